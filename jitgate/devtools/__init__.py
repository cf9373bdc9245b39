"""Development tooling: what tests, the demo and the benchmarks run, never the product.

Installed with the ``demo`` extra (kmock, httpx, jsonpatch); the operator, the
webhook and the client never import it (``.importlinter`` checks that only the CLI does, for
``jitgate demo``).

Module map:

=================  ==========================================================================
emulator/          a Kubernetes API emulator on kmock, serving jitgate's generated CRDs; see
                   its module map (``python -m jitgate.devtools.emulator`` runs one)
demo               ``jitgate demo``: emulator, operator and webhook as processes, and the
                   story played against them
devcerts           a throwaway certificate authority and serving certificates
admission_reviews  AdmissionReview builders, as the API server would send them
=================  ==========================================================================
"""
