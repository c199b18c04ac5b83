"""MedHE on Flower 1.42 (the ``flower`` extra): the protocol as a ServerApp and a ClientApp.

Modules: ``env`` (every call-out switched off), ``keys`` (the clients' key file, set up out of band),
``partitions`` (one data file per site), ``state`` (per-site state in ``context.state``), ``client_app``
and ``server_app`` (the Flower apps, running the roles of :mod:`medhe.fl.client` and
:mod:`medhe.fl.server`), ``simulation`` (Flower's simulation
engine in a child process), ``deploy`` (a SuperLink and SuperNodes on localhost), ``engine``
(``pipeline.engine``), ``scale`` (client-count sweep). Run it across sites: ``docs/deploy.md``.
"""
