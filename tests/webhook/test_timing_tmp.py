import json
import time
from typing import Any


async def test_timing(cluster: Any, webhook: Any, client: Any, reviews: Any) -> None:
    for path in ("/healthz", "/healthz"):
        t = time.perf_counter()
        for _ in range(20):
            await client.get(path)
        print(path, (time.perf_counter() - t) / 20 * 1000, "ms")
    body = json.dumps(reviews.exec(namespace="dev")).encode()
    t = time.perf_counter()
    for _ in range(20):
        await client.post("/validate", content=body, headers={"content-type": "application/json"})
    print("post", (time.perf_counter() - t) / 20 * 1000, "ms")
