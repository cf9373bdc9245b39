"""A Kubernetes API emulator for tests and for ``jitgate demo`` (no cluster needed).

kmock 0.8's ``KubernetesEmulator`` with storage semantics close enough to a real API server
for kopf, the ``kubernetes`` Python client and the real ``kubectl`` binary, serving jitgate's
kinds from the CRDs generated from the models (:mod:`jitgate.core.crds`).

Module map:

=====================  =====================================================================
store                  :class:`KubeEmulator`: objects, metadata, writes, finalizers, garbage
                       collection, watches (what kmock lacks, as overrides of its emulator)
routes                 which storage call answers which HTTP request
kinds                  the kinds served: Kubernetes' own, kopf's peerings, CRDs, jitgate's
kmock_adaptations      the one fix to kmock's module state (namespace URLs), applied by
                       :class:`KubeEmulator` when it is created, never on import
patches                JSON patch, merge patch, strategic patch (as merge)
selection              label and field selectors
tables                 ``kubectl get`` tables and printer columns
users                  who is calling (the bearer token is the user's name), kubeconfigs
errors                 :class:`ApiError`, served as a ``Status`` object
server                 :func:`run_emulator` (in a test's loop), :func:`serve_forever`
__main__               ``python -m jitgate.devtools.emulator``: the process ``jitgate demo`` runs
=====================  =====================================================================

Not emulated: authentication and authorization (the bearer token is taken as the user
name, see :func:`request_user`), admission webhooks, schema validation and defaulting,
OpenAPI (so ``kubectl apply``/``create -f`` need ``--validate=false``), protobuf (so
kubectl's typed generators such as ``kubectl create namespace X`` get 415: apply a manifest
instead), server-side apply, strategic-merge list semantics (applied as a JSON merge
patch), foreground deletion (treated as background), deleting a CRD (its kind stays
served), namespace existence checks, ``exec``/``attach``/``port-forward``/``log`` streams,
pagination (``limit`` is ignored; lists are complete). Controllers do not run: a
Deployment never gets Pods, a Pod never gets a phase unless a test patches its status.

Serving it::

    async with run_emulator() as handle:          # handle.url, handle.emulator
        handle.write_kubeconfig(path)             # for kubectl and kubernetes.config
        ...

or as a process: ``python -m jitgate.devtools.emulator --port 0 --kubeconfig kc.yaml`` prints
the URL on stdout once it is ready and serves until SIGTERM/SIGINT.

Running kopf against it in a test (in the test's event loop; what works best)::

    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return handle.connection_info()

    @kopf.on.create("jitgate.dev", "v1alpha1", "accessrequests", registry=registry)
    def created(patch: kopf.Patch, **_: Any) -> None:
        patch.status["phase"] = "Pending"

    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True
    settings.background.cancellation_polling = 0.1
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(kopf.operator(registry=registry, settings=settings,
        standalone=True, clusterwide=True, stop_flag=stop, ready_flag=ready))
    await ready.wait()
    ...
    stop.set(); await task

``kopf.operator`` as a task beats ``KopfRunner`` here: ``KopfRunner`` runs kopf in its own
thread and loop, loads handlers through the CLI, and its ``__exit__`` joins the thread from
inside the test loop that serves the emulator. ``kopf.operator`` treats every task created
after its start as its own and waits up to 5 s for them at exit; the server side of this
emulator is built so that nothing of it lingers (watch handlers are cancelled when the
client disconnects, and ``keep_alive=False`` in tests closes each non-watch connection), so
``stop.set(); await task`` returns at once (measured: 5 s with keep-alive connections from
a ``kubernetes`` client, 0.01 s without). A create -> on.create status -> timer deletes after
a 1 s TTL (0.5 s interval) round takes ~1.1 s. ``tests/conftest.py`` wraps this recipe as
the ``kopf_runner`` fixture.
"""

from jitgate.devtools.emulator.errors import ApiError
from jitgate.devtools.emulator.kinds import jitgate_crds, register_jitgate_kinds
from jitgate.devtools.emulator.server import EmulatorHandle, run_emulator, serve_forever
from jitgate.devtools.emulator.store import KubeEmulator
from jitgate.devtools.emulator.users import request_user

__all__ = [
    "ApiError",
    "EmulatorHandle",
    "KubeEmulator",
    "jitgate_crds",
    "register_jitgate_kinds",
    "request_user",
    "run_emulator",
    "serve_forever",
]
