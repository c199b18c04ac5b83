"""Write the pipeline's source notebooks (clean: no outputs). Run: python tools/make_notebooks.py

The notebooks are thin on purpose: a parameters cell, params.load, a few medhe calls, a look
at the results. Editing them in Jupyter is fine too; this script is how they were first made.
"""

from pathlib import Path

import nbformat as nbf

HEAD = ("import os\nfrom medhe import params, records\nos.chdir(records.project_root())\n"
        "P = params.load(params_file)\nbase = f\"results/{P.profile}\"")


def notebook(cells):
    nb = nbf.v4.new_notebook()
    # the project's kernel, registered inside .venv by `make setup` (tools/register_kernel.py)
    nb.metadata = {"kernelspec": {"name": "medhe", "display_name": "medhe (Python 3.11)", "language": "python"},
                   "language_info": {"name": "python"}}
    for i, (kind, src, *tags) in enumerate(cells):
        cell = nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src)
        cell["id"] = f"cell-{i}"  # stable ids: regenerating an unchanged notebook changes no byte (DVC deps)
        if tags:
            cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    return nb


NOTEBOOKS = {
    "10_data": [
        ("md", "# 10 · Data\n\nWhich records the profile trains on, their labels and the client split. Writes\n"
               "`results/<profile>/data/summary.json` and `results/<profile>/config.json` (the configuration the ledger cites)."),
        ("code", "params_file = \"params.yaml\"", "parameters"),
        ("code", HEAD),
        ("code", "from medhe import data\nfrom medhe.fl.simulate import load_dataset\n"
                 "ds = load_dataset(P)\nalpha = P.data.dirichlet_alpha if P.data.partition == \"dirichlet\" else None\n"
                 "parts = data.partition(ds.y_train, scheme=P.data.partition, num_clients=P.data.num_clients, alpha=alpha, seed=P.seed)\n"
                 "summary = {**data.summary(ds), \"partition\": P.data.partition, \"client_sizes\": [len(p) for p in parts]}\n"
                 "records.write_json(f\"{base}/data/summary.json\", summary)\nsummary"),
        ("code", "config = {\"profile\": P.profile, \"dataset\": P.data.dataset, \"model\": P.model.name, \"max_length\": P.model.max_length,\n"
                 "          \"num_clients\": P.data.num_clients, \"rounds\": P.train.rounds, \"local_epochs\": P.train.local_epochs,\n"
                 "          \"seeds\": list(P.pipeline.seeds), \"methods\": list(P.pipeline.methods),\n"
                 "          \"ckks\": f\"N={P.ckks.poly_modulus_degree} {list(P.ckks.coeff_mod_bit_sizes)} 2^{P.ckks.scale_bits}\",\n"
                 "          \"dp\": P.to_dict()[\"dp\"], \"sparsify\": P.to_dict()[\"sparsify\"],\n"
                 "          \"quant\": P.to_dict()[\"quant\"], \"params_digest\": P.digest()}\n"
                 "records.write_json(f\"{base}/config.json\", config)\nconfig"),
    ],
    "20_train": [
        ("md", "# 20 · One federated training run\n\nOne method × one seed (plus optional overrides for sweeps). Writes `history.csv`,\n"
               "`metrics.json`, `run.json` and `bytes.csv` into `results/<profile>/<group>/<tag><method>_s<seed>/`."),
        # comments on their own lines: papermill reads "x = 1  # text" as a type annotation and warns
        ("code", "params_file = \"params.yaml\"\nmethod = \"fedavg\"\nseed = 42\ngroup = \"runs\"\ntag = \"\"\n"
                 "# comma-separated section.key=value pairs\noverrides = \"\"\nrun_mia = True\n"
                 "# empty: derived from the above\nout_dir = \"\"\n"
                 "# \"text\": a plain progress bar on stderr, which papermill streams to the terminal (make repro)\n"
                 "progress_bar = \"widget\"", "parameters"),
        ("code", "import os\n"
                 "# the classification head is new, so transformers' load report of its missing weights is expected\n"
                 "os.environ.setdefault(\"TRANSFORMERS_VERBOSITY\", \"error\")\n"
                 "if progress_bar == \"text\":\n"
                 "    import tqdm.auto, tqdm.std\n"
                 "    tqdm.auto.tqdm = tqdm.std.tqdm\n"
                 "import pandas as pd\nfrom medhe import fl, params, records, results\nos.chdir(records.project_root())\n"
                 "P = params.load(params_file, overrides=overrides)\n"
                 "out_dir = out_dir or str(results.run_path(P.profile, group, method=method, seed=seed, tag=tag))\nout_dir"),
        ("code", "result = fl.run(P, method=method, seed=seed, out_dir=out_dir)"),
        ("md", "Membership inference on the trained model (the paper's four attacks, plus LiRA if `mia.lira` lists it):\n"
               "members are its training records, non-members the held-out test records, balanced."),
        ("code", "from medhe import attacks\nmia = attacks.evaluate_run(P, method=method, seed=seed, result=result,\n"
                 "                           config=attacks.config_from_params(P.mia)) if run_mia else None\n"
                 "attacks.write_report(mia, out_dir) if run_mia else None\n"
                 "None if mia is None else mia.to_frame()[[\"attack\", \"success_rate\", \"ci_low\", \"ci_high\", \"auc\", \"tpr_at_1pct_fpr\", \"warnings\"]]"),
        ("code", "history = pd.DataFrame(result.history)\nhistory.filter(regex=\"^(round|accuracy|f1_|majority|bytes_up_per|bytes_down_per|density|epsilon)\")"),
        ("code", "pd.Series(result.record[\"time_per_phase_s\"], name=\"seconds\")"),
        ("md", "Accuracy and macro-F1 per round, and the bytes each client has sent and received so far (measured)."),
        ("code", "from medhe import run_figure\n# medhe draws off-screen (Agg); the inline backend shows the figure here\n"
                 "get_ipython().run_line_magic(\"matplotlib\", \"inline\")\nrun_figure.curves(history);"),
    ],
    "25_target": [
        ("md", "# 25 · Rounds and bytes to a target\n\nOne variant (`method[-s<sparsity>][-b<bits>]`) × one seed, trained until its test\n"
               "macro-F1 reaches the target (a fraction of FedAvg's final macro-F1 on the same seed) or the round budget\n"
               "`pipeline.target_rounds` runs out; at least the paper's 3 rounds. FedAvg's reference run (`reference` empty)\n"
               "runs the whole budget. Writes `results/<profile>/target/<variant>_s<seed>/`."),
        ("code", "params_file = \"params.yaml\"\nvariant = \"fedavg\"\nseed = 42\n"
                 "# FedAvg's reference metrics.json; empty: this run is the reference\nreference = \"\"\n"
                 "# \"text\": a plain progress bar on stderr, which papermill streams to the terminal (make repro)\n"
                 "progress_bar = \"widget\"", "parameters"),
        ("code", "import os\nos.environ.setdefault(\"TRANSFORMERS_VERBOSITY\", \"error\")\n"
                 "if progress_bar == \"text\":\n    import tqdm.auto, tqdm.std\n    tqdm.auto.tqdm = tqdm.std.tqdm\n"
                 "import pandas as pd\nfrom medhe import fl, params, records, results, targets\n"
                 "from medhe.fl.methods import parse_variant\nos.chdir(records.project_root())\n"
                 "method, overrides = parse_variant(variant)\n"
                 "budget = params.load(params_file).pipeline.target_rounds\n"
                 "P = params.load(params_file, overrides={**overrides, \"train.rounds\": budget})\n"
                 "target = targets.reference_target(reference, fraction=P.pipeline.target_fraction) if reference else None\n"
                 "out_dir = str(results.run_path(P.profile, \"target\", method=variant, seed=seed))\n"
                 "method, overrides, target, out_dir"),
        ("code", "result = fl.run(P, method=method, seed=seed, out_dir=out_dir, target_macro_f1=target,\n"
                 "                min_rounds=targets.PAPER_ROUNDS)\nresult.record.get(\"target\")"),
        ("code", "history = pd.DataFrame(result.history)\n"
                 "history.filter(regex=\"^(round|accuracy|f1_macro|bytes_up_per|bytes_down_per|clip_|density|epsilon)\")"),
        ("code", "from medhe import run_figure\n# medhe draws off-screen (Agg); the inline backend shows the figure here\n"
                 "get_ipython().run_line_magic(\"matplotlib\", \"inline\")\nrun_figure.curves(history);"),
    ],
    "30_security": [
        ("md", "# 30 · CKKS security parameters\n\nEvery parameter set the paper or the pipeline uses: the HE standard's security level,\n"
               "accepted or refused (refused sets never reach TenSEAL), ciphertext bytes, measured precision and exact packing."),
        ("code", "params_file = \"params.yaml\"", "parameters"),
        ("code", HEAD),
        ("code", "import pandas as pd\nfrom medhe import rng\nfrom medhe.ckks.table import security_table\n"
                 "table = pd.DataFrame(security_table(rng=rng.generator(P.seed, \"security-table\")))\n"
                 "os.makedirs(f\"{base}/security\", exist_ok=True)\ntable.to_csv(f\"{base}/security/params.csv\", index=False)\n"
                 "table.drop(columns=[\"reason\"])"),
        ("code", "table.loc[~table[\"accepted\"], [\"label\", \"reason\"]].to_dict(\"records\")"),
    ],
    "40_privacy": [
        ("md", "# 40 · Differential privacy\n\nEpsilon of the client-level Gaussian mechanism (dp-accounting, RDP and PLD) for the\n"
               "configured noise multiplier, and the multiplier needed for the target epsilon; the privacy statement."),
        ("code", "params_file = \"params.yaml\"\ntarget_epsilon = 1.0", "parameters"),
        ("code", HEAD),
        ("code", "import pandas as pd\nfrom medhe import privacy\nrounds = max(P.train.rounds, P.pipeline.convergence_rounds)\n"
                 "needed = {acc: privacy.noise_for_epsilon(target_epsilon=target_epsilon, sampling_rate=1.0, rounds=P.train.rounds,\n"
                 "                                        delta=P.dp.delta, accountant=acc) for acc in (\"rdp\", \"pld\")}\n"
                 "curves = [privacy.epsilon_curve(noise_multiplier=z, rounds=rounds, delta=P.dp.delta)\n"
                 "          for z in (P.dp.noise_multiplier, needed[\"rdp\"])]\n"
                 "eps = pd.DataFrame([row for curve in curves for row in curve])\n"
                 "os.makedirs(f\"{base}/privacy\", exist_ok=True)\neps.to_csv(f\"{base}/privacy/epsilon.csv\", index=False)\neps"),
        ("md", "The statement for the unquantised paths (plaintext, unpacked CKKS): the fixed-denominator mean of\n"
               "DP-FedAvg, sensitivity C / n. Packed CKKS and BFV with Gaussian shares round each client's noisy\n"
               "share and report epsilon as not covered; BFV with Skellam shares has its own accountant (run records)."),
        ("code", "statement = privacy.privacy_statement(noise_multiplier=P.dp.noise_multiplier, clip_norm=P.dp.clip_norm,\n"
                 "                                     num_clients=P.data.num_clients, rounds=P.train.rounds, delta=P.dp.delta,\n"
                 "                                     estimator=privacy.ESTIMATOR,\n"
                 "                                     sensitivity=privacy.sensitivity_fixed_denominator(\n"
                 "                                         clip_norm=P.dp.clip_norm, num_public=P.data.num_clients))\n"
                 "statement[\"noise_multiplier_for_target\"] = {\"target_epsilon\": target_epsilon, **needed}\n"
                 "records.write_json(f\"{base}/privacy/statement.json\", statement)\nstatement"),
    ],
    "45_privacy_utility": [
        ("md", "# 45 · One privacy-utility run\n\nOne point of the privacy-utility frontier x one seed: `none` (no DP), `client-z<z>` or\n"
               "`client-eps<e>` (the paper's client-level noise), `record-eps<e>` (record-level DP-SGD in each client,\n"
               "Opacus). `medhe.privacy_utility.plan` turns the point into a method and overrides. Writes\n"
               "`results/<profile>/privacy/runs/<point>_s<seed>/`."),
        ("code", "params_file = \"params.yaml\"\npoint = \"record-eps8\"\nseed = 42", "parameters"),
        ("code", "import os\nimport pandas as pd\nfrom medhe import fl, params, privacy_utility, records\nos.chdir(records.project_root())\n"
                 "plan = privacy_utility.plan(params.load(params_file), point)\n"
                 "P = params.load(params_file, overrides=plan.overrides)\n"
                 "out_dir = privacy_utility.run_dir(P.profile, point, seed=seed)\nplan"),
        ("code", "result = fl.run(P, method=plan.method, seed=seed, out_dir=out_dir)"),
        ("code", "pd.DataFrame(result.history).filter(regex=\"^(round|accuracy|f1_macro|majority_f1|epsilon|noise_to_signal)\")"),
    ],
    "46_privacy_frontier": [
        ("md", "# 46 · The privacy-utility table\n\n`results/<profile>/privacy_utility.csv`: one row per (point, seed) run of the\n"
               "`privacy_utility` stage, with the epsilon its accountant measured (client-level: RDP over the rounds;\n"
               "record-level: Opacus, the largest over clients), macro-F1, accuracy and the majority class."),
        ("code", "params_file = \"params.yaml\"", "parameters"),
        ("code", HEAD),
        ("code", "from medhe import privacy_utility\n"
                 "table = privacy_utility.utility_table(P.profile, points=P.pipeline.privacy_points, seeds=P.pipeline.privacy_seeds)\n"
                 "table.to_csv(privacy_utility.table_path(P.profile), index=False)\ntable"),
        ("code", "table.groupby([\"kind\", \"point\"])[[\"epsilon\", \"macro_f1\", \"accuracy\", \"noise_to_signal_mean\"]].mean()"),
    ],
    "50_comm": [
        ("md", "# 50 · Communication\n\nMeasured bytes (every message serialised and counted) per method, for the embedded model\n"
               "(`runs`) and the paper-sized model (`papersize`, distilbert-arch, 66,955,010 parameters); the sparsity sweep and the\n"
               "client-count sweep."),
        ("code", "params_file = \"params.yaml\"", "parameters"),
        ("code", HEAD),
        ("code", "from medhe import report\ntables = report.comm_tables(P.profile, target_fraction=P.pipeline.target_fraction)\n"
                 "report.write_tables(tables, f\"{base}/comm\")\nsorted(tables)"),
        ("code", "tables[\"bytes\"][[\"group\", \"method\", \"seed\", \"num_params\", \"mib_up_per_client_round\", \"mib_down_per_client_round\",\n"
                 "                 \"mib_up_round_all_clients\"]].groupby([\"group\", \"method\"]).mean(numeric_only=True)"),
    ],
    "60_mia": [
        ("md", "# 60 · Membership inference across runs\n\nCollects every run's attack results: worst-case success rate over the\n"
               "paper's four attacks (as the paper reports it), AUC and TPR at low FPR, and the ROC points for the figure."),
        ("code", "params_file = \"params.yaml\"", "parameters"),
        ("code", HEAD),
        ("code", "from medhe import report\ntables = report.mia_tables(P.profile)\nreport.write_tables(tables, f\"{base}/mia\")\n"
                 "tables[\"summary\"].groupby(\"method\")[[\"worst_success_rate\", \"max_auc\", \"worst_any_success_rate\"]].agg([\"mean\", \"std\"])"),
        ("md", "Offline LiRA (stage `lira`): one target per method in `pipeline.lira_methods`, "
               "`pipeline.lira_shadows` shadow federated runs each; the paper's four attacks on the same target for comparison."),
        ("code", "lira = report.mia_tables(P.profile, group=\"lira\")\n"
                 "report.write_tables({f\"lira_{k}\": v for k, v in lira.items()}, f\"{base}/mia\")\n"
                 "lira[\"attacks\"].pivot_table(index=\"method\", columns=\"attack\", values=[\"auc\", \"tpr_at_1pct_fpr\"])"),
    ],
    "80_stats": [
        ("md", "# 80 · Statistics over trials\n\nMean, std (ddof=1) and 95 % CI per method; paired t-test and Wilcoxon signed-rank\n"
               "(MedHE vs FedAvg as the paper does, and each ablation vs MedHE); convergence rounds."),
        ("code", "params_file = \"params.yaml\"", "parameters"),
        ("code", HEAD),
        ("code", "from medhe import report\ntables = report.stats_tables(P.profile)\nreport.write_tables(tables, f\"{base}/stats\")\n"
                 "records.write_json(f\"{base}/stats/metrics.json\", report.metrics_summary(tables))\n"
                 "tables[\"summary\"].pivot(index=\"method\", columns=\"metric\", values=\"mean\")"),
        ("code", "tables.get(\"tests\")"),
        ("md", "Wall time per phase, mean seconds per run. Every transport times the same phases (`align`, `noise`,\n"
               "`quantise`, `encrypt`, `aggregate`, `decrypt`); `untimed` is what a run does outside them (byte\n"
               "accounting, records, the simulator's bookkeeping), so each method's phases add up to its wall time."),
        ("code", "tables[\"phases\"].pivot(index=\"phase\", columns=\"method\", values=\"mean_s\")"),
    ],
    "90_figures": [
        ("md", "# 90 · Figures\n\nThe only writer of `figures/`; reads only `results/`."),
        ("code", "params_file = \"params.yaml\"", "parameters"),
        ("code", HEAD + "\nfigdir = f\"figures/{P.profile}\""),
        ("code", "import pandas as pd\nfrom medhe import claims, plots\n"
                 "plots.save(plots.bytes_per_method(pd.read_csv(f\"{base}/comm/bytes.csv\")), f\"{figdir}/bytes_per_method.png\")\n"
                 "plots.save(plots.bytes_vs_sparsity(pd.read_csv(f\"{base}/comm/sweep.csv\")), f\"{figdir}/bytes_vs_sparsity.png\")\n"
                 "summary = pd.read_csv(f\"{base}/stats/summary.csv\")\n"
                 "plots.save(plots.metric_per_method(summary), f\"{figdir}/accuracy_f1.png\")\n"
                 "plots.save(plots.convergence(pd.read_csv(f\"{base}/stats/convergence_history.csv\")), f\"{figdir}/convergence.png\")\n"
                 "plots.save(plots.epsilon_vs_rounds(pd.read_csv(f\"{base}/privacy/epsilon.csv\")), f\"{figdir}/epsilon.png\")\n"
                 "plots.save(plots.he_frontier(pd.read_csv(f\"{base}/security/params.csv\")), f\"{figdir}/he_frontier.png\")\n"
                 "plots.save(plots.mia_roc(pd.read_csv(f\"{base}/mia/roc.csv\")), f\"{figdir}/mia_roc.png\")\n"
                 "plots.save(plots.mia_roc(pd.read_csv(f\"{base}/mia/lira_roc.csv\"), attack=\"lira_offline\"), f\"{figdir}/lira_roc.png\")\n"
                 "claimed_bytes, claimed_f1 = claims.claimed_frontier_point(\"claims/paper.yaml\")\n"
                 "plots.save(plots.frontier(pd.read_csv(f\"{base}/comm/frontier.csv\"), claimed_bytes_per_param=claimed_bytes,\n"
                 "                          claimed_f1=claimed_f1, majority_f1=plots.majority_baseline(summary, \"f1_macro\")),\n"
                 "           f\"{figdir}/frontier.png\")\n"
                 "utility = pd.read_csv(f\"{base}/privacy_utility.csv\")\n"
                 "if not utility.empty:  # the profile lists privacy points (pipeline.privacy_points)\n"
                 "    plots.save(plots.privacy_utility(utility), f\"{figdir}/privacy_utility.png\")\n"
                 "from medhe.flower import scale\n"
                 "plots.save(scale.plot(f\"{base}/flower_scale/scale.csv\"), f\"{figdir}/flower_scale.png\")\n"
                 "sorted(os.listdir(figdir))"),
        ("md", "Rounds and bytes to the target: every target variant, then the ablations (error feedback, EMA threshold,\n"
               "packing, the paper's fixed clip bound) on the same axes. The paper's point: its claimed bytes per round over\n"
               "its 3 rounds, per client."),
        ("code", "from medhe import targets\ncurves = pd.read_csv(f\"{base}/comm/curves.csv\")\n"
                 "to_target = pd.read_csv(f\"{base}/comm/to_target.csv\")\n"
                 "claimed = (targets.PAPER_ROUNDS * claimed_bytes / P.data.num_clients, claimed_f1)\n"
                 "majority = plots.majority_baseline(summary, \"f1_macro\")\n"
                 "plots.save(plots.target_curves(curves, to_target, majority_f1=majority, claimed=claimed,\n"
                 "                               title=\"bytes to accuracy\"), f\"{figdir}/target_curves.png\")\n"
                 "ablations = [\"medhe_no_dp\", \"medhe_no_dp_no_ef\", \"medhe_no_dp_no_adaptive\", \"medhe_no_dp_no_packing\",\n"
                 "             \"medhe_no_dp_c1\", \"fedavg\"]\n"
                 "plots.save(plots.target_curves(curves, to_target, variants=ablations, majority_f1=majority,\n"
                 "                               title=\"ablations, bytes to accuracy\"), f\"{figdir}/ablation_curves.png\")\n"
                 "to_target"),
    ],
    "95_claims": [
        ("md", "# 95 · Claims ledger\n\nFor every claim of the paper: claimed (from `claims/paper.yaml`), measured (from `results/`),\n"
               "the configuration, the source file and a verdict by the rule stated next to it."),
        ("code", "params_file = \"params.yaml\"\nclaims_file = \"claims/paper.yaml\"", "parameters"),
        ("code", HEAD),
        ("code", "from medhe import claims\nledger = claims.build_ledger(claims_file, root=\"results\", profile=P.profile)\n"
                 "table = claims.to_frame(ledger)\ntable.to_csv(f\"{base}/claims.csv\", index=False)\n"
                 "records.write_json(f\"{base}/claims.json\", table.to_dict(\"records\"))\n"
                 "open(f\"{base}/claims.md\", \"w\").write(claims.to_markdown(ledger))\n"
                 "table[[\"id\", \"measured\", \"verdict\"]]"),
    ],
}

if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1] / "notebooks"
    for name, cells in NOTEBOOKS.items():
        nbf.write(notebook(cells), root / f"{name}.ipynb")
        print("wrote", root / f"{name}.ipynb")
