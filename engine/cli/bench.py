"""`prunelab bench train|scores|select|tui`: the benchmarks, as ratios measured in one run."""
from __future__ import annotations

import click

from .common import data_dir_option, device_option, handle_errors, json_option, main, print_json


def cell(row: dict, key: str, fmt: str, width: int) -> str:
    """One right-aligned table cell: the row's value in `fmt`, or "-" where it has none."""
    return (format(row[key], fmt) if row.get(key) is not None else "-").rjust(width)


@main.group("bench")
def bench_group() -> None:
    """Measure prunelab's speed against textbook PyTorch on this machine."""


@bench_group.command("train")
@click.option("--dataset", default="mnist", show_default=True, help="mnist, mnist-mini, cifar10 or npz:PATH.")
@click.option("--model", default=None, help="Default: cnn for MNIST, resnet18 otherwise.")
@click.option("--batch-size", default=128, show_default=True, type=int)
@click.option("--samples", default=30000, show_default=True, type=int, help="Training samples timed per trainer.")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile prunelab's model (CUDA only).")
@click.option("--epochs", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also train each model this many epochs and report test accuracy and wall time.")
@click.option("--train-size", default=None, type=click.IntRange(min=10),
              help="With --epochs: a class-stratified training subset of this many samples.")
@data_dir_option
@device_option
@json_option
@handle_errors
def bench_train_command(dataset, model, batch_size, samples, compile_model, epochs, train_size, data_dir, device,
                        as_json):
    """Training samples/s: prunelab's trainer against a DataLoader loop (--model a,b: each in one run)."""
    from ..bench.train import bench_models, bench_train

    kwargs = {"dataset": dataset, "batch_size": batch_size, "samples": samples, "data_dir": data_dir, "device": device,
                  "compile": compile_model}
    if model is None or ("," not in model and not epochs):
        results = [bench_train(model=model, **kwargs)]
    else:
        results = bench_models(model, epochs, train_size, **kwargs)
    if as_json:
        print_json(results[0] if len(results) == 1 else results)
        return
    for result in results:
        click.echo(f"{result['dataset']} {result['model']} batch {batch_size} on {result['device']}: "
                   f"prunelab {result['ours']['samples_per_second']:,.0f} samples/s (data on the device), "
                   f"{result['streamed']['samples_per_second']:,.0f} (streamed from host memory), "
                   f"DataLoader loop {result['baseline']['samples_per_second']:,.0f} samples/s, "
                   f"ratio {result['ratio']:.2f}x")
        if "accuracy" in result:
            acc = result["accuracy"]
            click.echo(f"  {acc['epochs']} epoch(s) on {acc['train_samples']} samples, {acc['recipe']} recipe "
                       f"(lr {acc['lr']:.4g}, tta {acc['tta']}): test accuracy "
                       f"{acc['test_accuracy']:.4f} ({acc['test_samples']} images), {acc['wall_seconds']:.1f} s")


@bench_group.command("scores")
@click.option("--dataset", default=None, help="Default: mnist with --data-dir, else mnist-mini; or cifar10, npz:PATH.")
@click.option("--model", default=None, help="Default: cnn for MNIST, resnet18 otherwise.")
@click.option("--samples", default=None, type=click.IntRange(min=10),
              help="Score a class-stratified subset of this many training samples (default: all).")
@click.option("--tile-to", default=None, type=click.IntRange(min=10),
              help="Repeat the training set to this many samples (e.g. 50000 from the 10,000-image CIFAR-10 subset).")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(min=1),
              help="Interleaved rounds; the median is reported.")
@click.option("--memory/--no-memory", default=True, show_default=True,
              help="Measure peak memory (fresh processes: adds a few seconds each).")
@click.option("--scorers", default=None, help="Comma-separated scorers to time (default: every registered one).")
@data_dir_option
@device_option
@json_option
@handle_errors
def bench_scores_command(dataset, model, samples, tile_to, batch_size, rounds, memory, scorers, data_dir, device,
                         as_json):
    """Scoring cost of each scorer (MNIST `cnn` by default), in training epochs, against naive and vmap peers."""
    from ..bench.scores import bench_scores

    result = bench_scores(data_dir=data_dir, samples=samples, device=device, batch_size=batch_size,
                          dataset=dataset, model=model, tile_to=tile_to, rounds=rounds, memory=memory,
                          scorers=[s.strip() for s in scorers.split(",") if s.strip()] if scorers else None)
    if as_json:
        print_json(result)
        return
    tiled = f" (tiled from {result['tiled_from']})" if result["tiled_from"] else ""
    click.echo(f"{result['dataset']} {result['model']}, {result['samples']} samples{tiled}, batch {batch_size} on "
               f"{result['device']}: one training epoch {result['train_epoch_seconds']:.2f} s")
    click.echo(f"{'scorer':<18} {'samples/s':>12} {'epochs':>7} {'vs naive':>9} {'vs vmap':>8} {'memory':>7}")
    for name, r in result["scorers"].items():
        click.echo(f"{name:<18} {cell(r, 'samples_per_second', ',.0f', 12)} {cell(r, 'epochs_equivalent', '.2f', 7)} "
                   f"{cell(r, 'speedup_vs_naive', '.1f', 9)} {cell(r, 'speedup_vs_vmap', '.1f', 8)} "
                   f"{cell(r, 'peak_memory_vs_train_step', '.2f', 7)}")
    click.echo("epochs: scoring time in training epochs; vs naive/vmap: speedup; memory: peak over a training step")
    checkpoint = [name for name, r in result["scorers"].items() if r.get("note", "").startswith("one checkpoint")]
    if checkpoint:
        click.echo(f"{', '.join(checkpoint)}: per checkpoint, against a per-sample loop of the same quantities")
    jvp = result["scorers"].get("gradient_alignment", {})
    if "speedup_vs_jvp" in jvp:
        click.echo(f"inner products g·ḡ, one pass: {jvp['inner_products_seconds']:.2f} s, a forward-mode JVP of the "
                   f"per-sample losses {jvp['jvp_seconds']:.2f} s ({jvp['speedup_vs_jvp']:.2f}x)")
    if "all_scorers_epochs_equivalent" not in result:
        return
    memory = (f", peak memory {result['all_scorers_peak_memory_vs_train_step']:.2f}x a training step "
              f"({result['memory_method']})" if "memory_method" in result else "")
    click.echo(f"loss, grad_norm, input_grad_norm and el2n in one pass: "
               f"{result['all_scorers_epochs_equivalent']:.2f} training epochs{memory}")


@bench_group.command("tui")
@click.option("--runs", default=5, show_default=True, type=int, help="Starts to time.")
@click.option("--store", default=".", type=click.Path(file_okay=False), help="Folder whose mlruns/ the TUI opens.")
@click.option("--marker", default=None, help="Text to wait for (default: the runs table's header).")
@json_option
@handle_errors
def bench_tui_command(runs, store, marker, as_json):
    """Time from starting `prunelab tui` to its first frame, in an 80x24 pseudo-terminal."""
    from ..bench.tui import TUI_MARKER, bench_tui

    result = bench_tui(runs=runs, store=store, marker=marker or TUI_MARKER)
    if as_json:
        print_json(result)
    else:
        click.echo(f"first frame of `prunelab tui` (s): {', '.join(map(str, result['seconds']))}; "
                   f"median {result['median_seconds']} s, max {result['max_seconds']} s")


@bench_group.command("select")
@click.option("--n", "n", default=50000, show_default=True, type=click.IntRange(min=20),
              help="Samples (MNIST has 60,000; more are tiled with 1 % noise).")
@click.option("--dim", default=128, show_default=True, type=click.IntRange(min=2),
              help="Embedding width (the cnn's is 128; another is a seeded Gaussian projection).")
@click.option("--fraction", default=0.1, show_default=True, type=float, help="Keep ratio, 0 < fraction < 1.")
@click.option("--strategies", default=None,
              help="Comma-separated; NAME or NAME/GREEDY (e.g. facility_location/stochastic). Default: all.")
@click.option("--reference-n", default=5000, show_default=True, type=click.IntRange(min=20),
              help="Samples on which ours and the dense DeepCore-style references are timed side by side.")
@click.option("--surrogate-samples", default=10000, show_default=True, type=click.IntRange(min=100),
              help="Training samples of the one-epoch cnn surrogate whose embeddings are used.")
@click.option("--memory/--no-memory", default=True, show_default=True,
              help="Measure peak memory: each case called once more, after all have been timed.")
@click.option("--peers", is_flag=True,
              help="Instead: facility location, graph cut and log-determinant beside apricot-select and "
                   "submodlib-py (those installed) on the same gradients, per class (--n, --fraction, "
                   "--surrogate-samples, --device apply).")
@click.option("--libraries", default=None, help="With --peers: comma-separated, of apricot, submodlib (default: "
                                                "every one installed).")
@data_dir_option
@device_option
@json_option
@handle_errors
def bench_select_command(n, dim, fraction, strategies, reference_n, surrogate_samples, memory, peers, libraries,
                         data_dir, device, as_json):
    """Seconds and peak memory of every selection strategy on real cnn embeddings, beside dense references."""
    from ..bench.select import bench_peers, bench_select

    if peers:
        wanted = [name.strip() for name in libraries.split(",") if name.strip()] if libraries else None
        r = bench_peers(n=n, fraction=fraction, device=device, data_dir=data_dir, surrogate_samples=surrogate_samples,
                        libraries=wanted)
        if as_json:
            print_json(r)
        else:
            _echo_peers(r)
        return
    names = [s.strip() for s in strategies.split(",") if s.strip()] if strategies else None
    r = bench_select(n=n, dim=dim, fraction=fraction, strategies=names, device=device, data_dir=data_dir,
                     reference_n=reference_n, surrogate_samples=surrogate_samples, memory=memory)
    if as_json:
        print_json(r)
        return
    tiled = f" (tiled from {r['real_samples']} real)" if r["real_samples"] < r["samples"] else ""
    click.echo(f"{r['dataset']} cnn embeddings: {r['samples']} samples{tiled}, {r['dim']}-d (gradients "
               f"{r['gradient_dim']}-d), keep {r['fraction']:g}, on {r['device']}; load average "
               f"{r['load_average'][0]}-{r['load_average'][1]}")
    m = r["reference_samples"]
    click.echo(f"{'strategy':<30} {'seconds':>8} {'peak MB':>8} | at {m}: {'ours s':>7} {'dense s':>8} "
               f"{'speed-up':>8} {'ours MB':>8} {'dense MB':>8}")
    for row in r["strategies"]:
        click.echo(f"{row['strategy']:<30} {cell(row, 'seconds', '.2f', 8)} {cell(row, 'peak_mb', '.1f', 8)} | "
                   f"{' ' * (len(str(m)) + 4)}{cell(row, 'small_seconds', '.2f', 7)} "
                   f"{cell(row, 'reference_seconds', '.2f', 8)} {cell(row, 'speedup', '.2f', 8)} "
                   f"{cell(row, 'small_peak_mb', '.1f', 8)} {cell(row, 'reference_peak_mb', '.1f', 8)}")
    click.echo(f"peak MB: {r['memory_method'] or 'not measured (--no-memory)'}; dense: DeepCore-style full matrices "
               "and masked loops")


def _echo_peers(r: dict) -> None:
    """The --peers table: seconds of each library (kernel included), speed-ups, objective and overlap."""
    tiled = f" (tiled from {r['real_samples']} real)" if r["real_samples"] < r["samples"] else ""
    click.echo(f"{r['dataset']} cnn gradient embeddings ({r['gradient_dim']}-d): {r['samples']} samples{tiled} in "
               f"{r['classes']} classes, keep {r['fraction']:g} per class, prunelab on {r['device']}; load average "
               f"{r['load_average'][0]}-{r['load_average'][1]}")
    if r["missing"]:
        click.echo(f"not installed (pip install -e '.[dev]'): {', '.join(r['missing'])}")
    libraries = r["libraries"]
    click.echo(f"{'function':<18} {'prunelab s':>10} " + " ".join(
        f"{lib + ' s':>12} {'speed-up':>8} {'objective':>10} {'Jaccard':>7}" for lib in libraries))
    for row in r["functions"]:
        click.echo(f"{row['function']:<18} {row['prunelab_seconds']:>10.2f} " + " ".join(
            f"{cell(row, lib + '_seconds', '.2f', 12)} {cell(row, lib + '_speedup', '.1f', 8)} "
            f"{cell(row, lib + '_objective_vs_prunelab', '+.1e', 10)} {cell(row, lib + '_jaccard', '.3f', 7)}"
            for lib in libraries))
    click.echo("peer seconds include the per-class kernel 0.5 + 0.5·cos they take as input "
               f"({r['functions'][0]['kernel_seconds']:.2f} s); objective: the peer's value relative to prunelab's")
    if "apricot_seconds_per_call" in r:
        click.echo(f"apricot compiles its numba gain functions on every fit: {r['apricot_seconds_per_call']:.2f} s "
                   "for a 50-sample fit")
