"""`prunelab subset`: the samples a trial kept, as a file (npy, csv, txt) for another tool or your own loop."""
from __future__ import annotations

import click

from .common import check_out_path, handle_errors, json_option, main, print_json, print_summary, tracking_uri_of


@main.command("subset")
@click.argument("run_id")
@click.option("--trial", default=None, metavar="TRIAL",
              help="Which trial of RUN: its key or name (see --list), its run id, or KEY=VALUE pairs such as "
                   "method=loss,ratio=0.3,seed=0 (not needed when RUN is a trial's id or has one pruning trial).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write FILE: .npy (indices; weights beside it as STEM.weights.npy), .csv (index, label, class, "
                   "weight, path) or .txt (a path or index per line). Default: the .txt form on stdout.")
@click.option("--list", "list_trials", is_flag=True, help="List the run's trials that kept a subset, and stop.")
@json_option
@click.pass_context
@handle_errors
def subset_command(ctx, run_id, trial, out, list_trials, as_json):
    """Write the samples a trial kept: indices into the data set read whole (file paths for folder:PATH data) and,
    for a weighted coreset, their weights."""
    from .. import api

    uri = tracking_uri_of(ctx)
    if list_trials:
        trials = api.subset_trials(run_id, tracking_uri=uri)
        if as_json:
            print_json(trials)
        else:
            print_summary([{"trial (--trial takes this name)": t["name"], "run_id": t["run_id"][:8],
                           "kept": t["kept"], "accuracy": t["accuracy"]} for t in trials],
                          title=f"trials of {run_id} that kept a subset")
        return
    check_out_path(out)
    kept = api.kept_subset(run_id, trial, tracking_uri=uri)
    written = [str(p) for p in kept.write(out)] if out else []
    if as_json:
        print_json({"run_id": kept.run_id, "trial": kept.trial, "trial_run_id": kept.trial_run_id,
                    "name": kept.name, "dataset": kept.dataset, "kept": len(kept), "of": kept.n,
                    "weighted": kept.weights is not None, "files": written})
        return
    if not out:
        click.echo(kept.text(), nl=False)
        return
    extra = " and weights" if kept.weights is not None else ""
    what = "file paths" if kept.paths is not None else "indices"
    click.echo(f"wrote {', '.join(written)}: {what}{extra} of the {len(kept)} of {kept.n} {kept.dataset} samples "
               f"kept by {kept.name} (run {kept.run_id})", err=True)
