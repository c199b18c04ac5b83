"""Engines: what carries the roles' bytes (:mod:`medhe.fl.client`, :mod:`medhe.fl.server`) between the parties.

``inprocess``: every party in one Python process, messages passed in memory and counted in the byte ledger
(:func:`medhe.fl.simulate.run` drives it). ``flower``: :mod:`medhe.flower`'s ServerApp and ClientApp carry the
same roles' bytes as Flower messages, in Flower's simulation engine or across processes and machines.

What any engine does, in this order (as :func:`medhe.fl.simulate.run` does in one process):

* setup (round 0): one client makes the key material (:func:`medhe.fl.client.make_keys`) and shares
  :func:`~medhe.fl.client.key_bytes` with the other clients out of band; each client loads it
  (:func:`~medhe.fl.client.load_keys`) and builds its codec (:func:`~medhe.fl.client.make_codec`); one client
  sends :meth:`~medhe.fl.client.ClientCodec.setup_message` (category ``context``); the server builds
  :func:`~medhe.fl.server.make_aggregator` and :func:`~medhe.fl.server.make_clip_server` from public values;
* each round: clients train from the global model and form their payloads
  (:meth:`medhe.fl.client.Client.prepare`, at the public ``global`` mask if any); if the method clips, the
  clip bound (:class:`~medhe.fl.server.ClipServer`: norms up once to calibrate an adaptive bound, the bound
  down; category ``clip``), each client clips (:meth:`~medhe.fl.client.Client.clip`) and, under adaptive
  clipping, sends its unclipped bit (the next bound comes down); the server sends the public
  :class:`~medhe.fl.plan.RoundPlan` (its ``clip_bound`` is the round's bound); ``begin`` -> index sets up,
  ``union`` -> union down (category ``index``); ``receive_union``; per block ``encode`` -> ``aggregate``
  (pass ``block=(start, stop)``) -> ``decode`` (category ``ciphertext`` or ``update``:
  :meth:`~medhe.fl.client.ClientCodec.category`); ``finish`` gives the mean update and the feedback that
  :meth:`~medhe.fl.client.Client.absorb` adds to the residual.

Between messages a client keeps :meth:`medhe.fl.client.Client.state_dict` (between rounds) and
:meth:`medhe.fl.client.ClientCodec.round_state` (within a round); neither holds a key.
"""
