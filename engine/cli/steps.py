"""`prunelab train` and `prunelab score`: one step at a time, progress on stderr."""
from __future__ import annotations

import click
import numpy as np
from click.core import ParameterSource

from ..config import SurrogateConfig, TrainConfig
from .common import (
    ProgressBars,
    check_out_path,
    data_dir_option,
    device_option,
    handle_errors,
    json_option,
    main,
    print_json,
    tracking_uri_of,
)

# One source of defaults: the config's fields, which engine.train and engine.score also use.
TRAIN = {name: f.default for name, f in TrainConfig.model_fields.items()}
INITS = SurrogateConfig.model_fields["inits"].default


# ---------------------------------------------------------------- train
@main.command("train")
@click.option("--dataset", default="mnist-mini", show_default=True, help="mnist-mini, mnist, cifar10 or npz:PATH.")
@click.option("--model", default="cnn", show_default=True, help="cnn, resnet18 or mlp.")
@click.option("--epochs", default=1, show_default=True, type=int)
@click.option("--steps", default=None, type=int, help="Budget in optimizer steps instead of epochs.")
@click.option("--batch-size", default=TRAIN["batch_size"], show_default=True, type=int)
@click.option("--lr", default=TRAIN["lr"], show_default=True, type=float)
@click.option("--schedule", default=TRAIN["schedule"], show_default=True,
              type=click.Choice(["constant", "step", "cosine", "onecycle"]))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--train-size", default=None, type=int, help="Train on a class-stratified subset of this size.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (CUDA only).")
@data_dir_option
@device_option
@json_option
@handle_errors
def train_command(dataset, model, epochs, steps, batch_size, lr, schedule, seed, train_size, compile_,
                  data_dir, device, as_json):
    """Train one model and report its test accuracy."""
    from .. import api

    with ProgressBars() as bars:
        result = api.train(dataset, model, epochs=epochs, steps=steps, batch_size=batch_size, lr=lr,
                           schedule=schedule, compile=compile_, seed=seed, data_dir=data_dir, device=device,
                           train_size=train_size, on_event=bars)
    summary = {"dataset": dataset, "model": model, "test_accuracy": result.test_accuracy,
               "test_loss": result.test_loss, "epochs": result.epochs, "steps": result.steps,
               "seconds": round(result.seconds, 3), "samples_per_second": round(result.samples_per_second, 1),
               "device": result.device, "history": result.history}
    if as_json:
        print_json(summary)
    else:
        click.echo(f"{dataset} {model}: test accuracy {result.test_accuracy:.2%} after {result.epochs} epoch(s), "
                   f"{result.seconds:.1f} s on {result.device} ({result.samples_per_second:,.0f} samples/s)")


# ---------------------------------------------------------------- score
def _epoch_list(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        epochs = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of epochs, such as 0,1,3") from None
    if not epochs:
        raise click.BadParameter("name at least one epoch, such as 1 or 0,1,3")
    return epochs


def _scorer_options(assignments: tuple[str, ...]) -> dict[str, dict]:
    """`--option tdds.window=5` ... as {"tdds": {"window": 5}}."""
    from ..config import parse_value
    from ..errors import ConfigError

    out: dict[str, dict] = {}
    for text in assignments:
        key, sep, value = text.partition("=")
        scorer, dot, option = key.strip().partition(".")
        if not (sep and dot and scorer and option):
            raise ConfigError(f"--option {text!r}: expected SCORER.KEY=VALUE, as in --option tdds.window=5")
        out.setdefault(scorer, {})[option] = parse_value(value.strip())
    return out


@main.command("score")
@click.option("--config", "config_source", default=None, metavar="CONFIG",
              help="Score as `prunelab run CONFIG` would (a TOML file or a preset): its data, model, seed, surrogates, "
                   "training and [scoring] options, so the run's cached surrogates are reused; flags given override.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="With --config: override a config field.")
@click.option("--dataset", default="mnist-mini", show_default=True, help="mnist-mini, mnist, cifar10 or npz:PATH.")
@click.option("--model", default="cnn", show_default=True, help="cnn, resnet18 or mlp.")
@click.option("--scorers", default="loss,el2n,grad_norm", show_default=True,
              help="Comma-separated scorer names (see `prunelab scorers`; file:PATH reads a file's scores), or all: "
                   "every registered scorer in one run.")
@click.option("--epochs", "score_epochs", default="1", show_default=True, callback=_epoch_list,
              help="Surrogate epochs to score at, comma-separated (0 = the untrained surrogate; with --config: the "
                   "surrogate's last epoch).")
@click.option("--surrogate-epochs", type=click.IntRange(min=0), default=None,
              help="The surrogates' training budget in epochs (default: the largest of --epochs).")
@click.option("--inits", default=INITS, show_default=True, type=click.IntRange(min=1),
              help="K surrogates that el2n and forgetting average over (others use the first).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--train-size", default=None, type=int, help="Score a class-stratified subset of this size.")
@click.option("--test-size", default=None, type=int, help="A class-stratified test subset of this size (as a run's "
                                                              "data.test_size: part of the cache key).")
@click.option("--batch-size", default=TRAIN["batch_size"], show_default=True, type=click.IntRange(min=1),
              help="Surrogate training batch size.")
@click.option("--score-batch-size", default=256, show_default=True, type=click.IntRange(min=1),
              help="Scoring batch size (does not change the scores).")
@click.option("--lr", default=TRAIN["lr"], show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--embeddings", is_flag=True, help="Also save surrogate 0's penultimate features (embeddings@eT).")
@click.option("--option", "scorer_options", multiple=True, metavar="SCORER.KEY=VALUE",
              help="A scorer's option, e.g. tdds.window=5 or el2n.epoch=20 (see `prunelab scorers`).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="The cache of surrogates and scores (default: the store's, ./mlruns/cache, which `run` uses).")
@click.option("--no-cache", is_flag=True, help="Train every surrogate again and keep nothing.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write an .npz: <scorer>@e<t> per scorer and epoch, predictions@e<t>, labels, indices.")
@data_dir_option
@device_option
@json_option
@click.pass_context
@handle_errors
def score_command(ctx, config_source, overrides, dataset, model, scorers, score_epochs, surrogate_epochs, inits, seed,
                  train_size, test_size, batch_size, score_batch_size, lr, embeddings, scorer_options, cache_dir,
                  no_cache, out, data_dir, device, as_json):
    """Train surrogates (or load them from the store's cache, shared with `run`) and score every training sample at
    the given epochs."""

    from .. import api
    from ..device import resolve_device
    from ..scoring.registry import SCORERS

    check_out_path(out)
    if scorers.strip() == "all":
        scorers = ",".join(SCORERS)
    given = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    args = {"dataset": dataset, "model": model, "epochs": score_epochs, "inits": inits, "seed": seed,
            "surrogate_epochs": surrogate_epochs, "batch_size": score_batch_size, "device": device,
            "data_dir": data_dir, "train_size": train_size, "test_size": test_size, "lr": lr,
            "train_batch_size": batch_size, "scorer_options": _scorer_options(scorer_options)}
    if overrides and not config_source:
        raise click.UsageError("--set needs --config CONFIG")
    with ProgressBars() as bars:
        if config_source:
            args = _config_arguments(api.load_config(config_source, list(overrides)), args, given, bars)
        args["surrogate_epochs"] = budget = (args["surrogate_epochs"] if args["surrogate_epochs"] is not None
                                             else max(*args["epochs"], 0))
        cache = None if no_cache else (cache_dir or api.cache_dir(tracking_uri_of(ctx)))
        result = api.score_result(scorers=scorers, embeddings=embeddings, cache=cache, on_event=bars, **args)
    where = str(resolve_device(args["device"]))
    if out:
        with open(out, "wb") as f:  # a file object: np.savez would append .npz to a bare name
            np.savez(f, **result.arrays())
    summary = _score_summary(result, args, where, budget, SCORERS)
    summary.update({"out": out, "cache": None if cache is None else str(cache)})
    if as_json:
        print_json(summary)
        return
    _print_scores(summary, result, budget, where)


def _config_arguments(config, args: dict, given: set[str], on_event) -> dict:
    """The arguments of a score of `config`'s surrogates, as `run` trains them; flags given on the command line win
    (a data flag changes the config's [data], whose reader options and memory budget still apply)."""
    from .. import api

    flag_of = {"model": "model", "seed": "seed", "inits": "inits", "surrogate_epochs": "surrogate_epochs",
               "batch_size": "score_batch_size", "device": "device", "epochs": "score_epochs", "lr": "lr",
               "train_batch_size": "batch_size"}
    train = config.train.model_dump(exclude={"epochs", "steps"})
    from_config = {"model": config.model, "seed": config.seed, "inits": config.surrogate.inits,
                   "surrogate_epochs": config.surrogate.epochs, "batch_size": config.surrogate.batch_size,
                   "device": config.device, "epochs": [config.surrogate.epochs], "lr": train.pop("lr"),
                   "train_batch_size": train.pop("batch_size"),
                   "scorer_options": {**config.scorer_options(), **args["scorer_options"]}}
    out = {**args, **{k: v for k, v in from_config.items() if flag_of.get(k) not in given}, **train}
    data = config.data.model_copy(update={k: args[k] for k in ("dataset", "data_dir", "train_size", "test_size")
                                          if k in given})
    exact = config.model_copy(update={"data": data, "device": out["device"]})
    out.update(dataset=api.config_dataset(exact, on_event), data_dir=None, train_size=None, test_size=None)
    return out


def _score_summary(result, args: dict, where: str, budget: int, registry) -> dict:
    stats = {f"{name}@e{t}": {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
                              "max": float(v.max())}
             for name, per_epoch in result.scores.items() for t, v in per_epoch.items()}
    rates = _samples_per_second(result, registry)
    for key in stats:
        stats[key]["samples_per_second"] = rates.get(key.split("@")[0])
    dataset = args["dataset"] if isinstance(args["dataset"], str) else args["dataset"].name
    return {"dataset": dataset, "model": args["model"], "samples": len(result.labels), "epochs": result.epochs,
            "surrogate_epochs": budget, "inits": result.inits, "seed": args["seed"], "device": where,
            "surrogates_trained": result.surrogates_trained,
            "seconds": {k: round(v, 3) for k, v in result.seconds.items()}, "scorers": stats}


def _print_scores(summary: dict, result, budget: int, where: str) -> None:
    seconds = summary["seconds"]
    cached = f" (cache: {summary['cache']})" if summary["cache"] else " (no cache)"
    click.echo(f"{summary['dataset']} {summary['model']}: {summary['samples']} samples scored at epoch(s) "
               f"{','.join(map(str, result.epochs))} of {budget}; {result.surrogates_trained} surrogate(s) trained"
               f"{cached} in {seconds['training']:.1f} s, scoring {seconds['scoring']:.1f} s, total "
               f"{seconds['total']:.1f} s on {where}")
    click.echo(f"{'scorer':<24} {'mean':>10} {'std':>10} {'min':>10} {'max':>10} {'samples/s':>10}")
    for key, s in summary["scorers"].items():
        rate = f"{s['samples_per_second']:>10.4g}" if s["samples_per_second"] else f"{'-':>10}"
        click.echo(f"{key:<24} {s['mean']:>10.4g} {s['std']:>10.4g} {s['min']:>10.4g} {s['max']:>10.4g} {rate}")
    click.echo("samples/s: pass scorers share one scoring pass per checkpoint (its rate), training scorers "
               "ride on the surrogates' training (its rate), embedding scorers are timed alone")
    if summary["out"]:
        click.echo(f"wrote {summary['out']}")


def _samples_per_second(result, registry) -> dict[str, float | None]:
    """Samples/s per scorer: of its own computation (embedding), of the shared pass (batch) or of training; none
    for scores read from a file."""
    from ..scoring.registry import check_scorer

    n, seconds = len(result.labels), result.seconds
    seen = {"embedding": len(result.epochs), "batch": len(result.epochs) * result.inits,  # samples scored, / n
            "training": max(result.epochs) * result.surrogates_trained}
    out: dict[str, float | None] = {}
    for name in result.scores:
        kind = check_scorer(name).kind
        spent = {"embedding": seconds.get(f"scorer:{name}", 0.0), "batch": seconds.get("scoring", 0.0),
                 "training": seconds.get("training", 0.0)}.get(kind, 0.0)
        out[name] = round(n * seen[kind] / spent, 1) if spent > 0 and kind in seen else None
    return out


# ---------------------------------------------------------------- bench
