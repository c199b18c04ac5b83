"""Scale of the tabular task on Flower's simulation engine: writes scale.csv.

    python benchmarks/flower_scale.py --params params.yaml --method medhe --out results/<profile>/flower_scale

(client counts: ``--clients``, else ``pipeline.flower_scale_clients`` of the parameters)

(see medhe.flower.scale; the figures stage draws figures/<profile>/flower_scale.png from the CSV).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medhe import params
from medhe.flower import scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--overrides", default="data.dataset=breast_cancer,data.max_train=null,data.max_test=null,model.name=mlp,model.hidden=16,"
                                          "train.rounds=2,train.local_epochs=1,train.batch_size=16,train.lr=0.01")
    ap.add_argument("--method", default="medhe")
    ap.add_argument("--clients", type=int, nargs="+", default=None)
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    P = params.load(args.params, overrides=args.overrides)
    out = Path(args.out)
    clients = list(args.clients or P.pipeline.flower_scale_clients)
    scale.measure(P, method=args.method, clients=clients, out_dir=out, num_cpus=args.num_cpus)


if __name__ == "__main__":
    main()
