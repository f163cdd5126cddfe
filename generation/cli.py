"""``culturelab generate ...``: make the motifs data set, train the cGAN, sample stimulus sets, evaluate, stylize.

Bad input (a missing file, an unknown culture, a checkpoint of another version, ...) is reported as one
line on stderr with exit code 2, and nothing half-written is left behind.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import threading
from pathlib import Path

import click

from culturelab.generation.checkpoint import DEFAULT_CHECKPOINT, CheckpointError
from culturelab.generation.data import DatasetError
from culturelab.generation.motifs import CULTURES, MAX_RESOLUTION, MIN_RESOLUTION
from culturelab.generation.nst import INITS, OPTIMIZERS, PRECISIONS
from culturelab.generation.train import TrainConfig  # its defaults are the CLI's: the shipped recipe
from culturelab.generation.translation import UPSAMPLINGS
from culturelab.generation.vgg import FEATURE_KINDS, IMAGENET_FILE


class BadInput(click.ClickException):
    """One line, ``Error: ...``, exit code 2."""

    exit_code = 2


class FiniteRange(click.FloatRange):
    """click's FloatRange lets nan through (every comparison with it is false): here it, and inf, are refused."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


NON_NEGATIVE = FiniteRange(0)
POSITIVE = FiniteRange(0, min_open=True)
BETA = FiniteRange(0, 1, max_open=True)  # Adam's
# torch.manual_seed takes a signed 64-bit integer.
SEED = click.IntRange(0, 2**63 - 1)


class OneLineCommand(click.Command):
    """Report option parsing errors as one line too (click prints the usage text otherwise)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise BadInput(f"{exc.format_message()} (see --help)") from exc


class GenerateGroup(click.Group):
    command_class = OneLineCommand

    def invoke(self, ctx: click.Context):
        # A job scheduler or `timeout` stops a run with SIGTERM: as SystemExit it unwinds like Ctrl-C, so the
        # staging folders of unfinished sets are removed on the way out.
        if threading.current_thread() is threading.main_thread():  # where Python allows a handler
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        try:
            return super().invoke(ctx)
        except OSError as exc:  # a folder that cannot be made or written, a full disk: the user's to mend
            where = f"{exc.filename}: " if exc.filename else ""
            raise BadInput(f"{where}{exc.strerror or exc}") from exc


def _check_writable(path: Path) -> None:
    """Fails now, not after an hour of work, when the result file ``path`` could not be written."""
    existed = path.exists()
    try:
        path.open("a").close()
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror}") from exc
    if not existed:
        path.unlink()


def _set_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not 1 <= len(value) <= 128:
        raise click.BadParameter("a set's name has 1 to 128 characters (Contract 1)", ctx, param)
    return value


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@click.group(cls=GenerateGroup)
def generate() -> None:
    """Culture-conditioned image generation: data set, training, sampling, evaluation."""


@generate.command("dataset")
@click.argument("name", type=click.Choice(["motifs"]))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder to write.")
@click.option("--per-culture", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--resolution", type=click.IntRange(MIN_RESOLUTION, MAX_RESOLUTION), default=64, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
def dataset(name: str, out: Path, per_culture: int, resolution: int, seed: int) -> None:
    """Write the built-in MOTIFS data set as an ImageFolder: OUT/<culture>/<culture>-NNNNN.png."""
    from culturelab.generation.data import write_motif_dataset

    try:
        written = write_motif_dataset(out, per_culture, resolution, seed, progress=True)
    except DatasetError as exc:
        raise BadInput(str(exc)) from exc
    click.echo(f"wrote {len(written)} images of {len(CULTURES)} cultures to {out}")


@generate.command("train")
@click.option(
    "--data", default=TrainConfig.data, show_default=True, help="'motifs' or an ImageFolder DATA/<culture>/*.png"
)
@click.option("--out", type=click.Path(file_okay=False), default=TrainConfig.out, show_default=True)
@click.option(
    "--resolution",
    type=int,
    default=TrainConfig.resolution,
    show_default=True,
    help="dcgan: 32, 64, 128; resnet: 32-256; spatial: the size it samples at (64-512).",
)
@click.option(
    "--arch",
    type=click.Choice(["dcgan", "resnet", "spatial"]),
    default=TrainConfig.arch,
    show_default=True,
    help="dcgan: the 32 px recipe; resnet: residual blocks (BigGAN-style); spatial: fully convolutional, on crops.",
)
@click.option("--crop", type=int, default=TrainConfig.crop, show_default=True, help="spatial: D's crop size.")
@click.option("--local-dim", type=click.IntRange(1), default=TrainConfig.local_dim, show_default=True, help="spatial.")
@click.option(
    "--periodic-dim", type=click.IntRange(0), default=TrainConfig.periodic_dim, show_default=True, help="spatial."
)
@click.option(
    "--diffaug",
    default=TrainConfig.diffaug,
    show_default=True,
    help="DiffAugment policy before D, e.g. color,translation,cutout (empty: none).",
)
@click.option(
    "--per-culture",
    type=click.IntRange(1),
    default=TrainConfig.per_culture,
    show_default=True,
    help="Images per culture rendered for --data motifs.",
)
@click.option("--steps", type=click.IntRange(1), default=TrainConfig.steps, show_default=True)
@click.option("--batch-size", type=click.IntRange(4), default=TrainConfig.batch_size, show_default=True)
@click.option("--lr-g", type=POSITIVE, default=TrainConfig.lr_g, show_default=True)
@click.option("--lr-d", type=POSITIVE, default=TrainConfig.lr_d, show_default=True)
@click.option("--beta1", type=BETA, default=TrainConfig.beta1, show_default=True, help="Adam beta1 (G and D).")
@click.option("--beta2", type=BETA, default=TrainConfig.beta2, show_default=True, help="Adam beta2 (G and D).")
@click.option("--ema-decay", type=FiniteRange(0, 1), default=TrainConfig.ema_decay, show_default=True)
@click.option("--ema-start", type=click.IntRange(0), default=TrainConfig.ema_start, show_default=True)
@click.option(
    "--mode-seeking",
    type=NON_NEGATIVE,
    default=TrainConfig.mode_seeking,
    show_default=True,
    help="Weight of the mode-seeking term (MSGAN) added to L_G; 0 = research design §4.4 exactly.",
)
@click.option("--g-channels", type=click.IntRange(4), default=TrainConfig.g_channels, show_default=True)
@click.option("--d-channels", type=click.IntRange(4), default=TrainConfig.d_channels, show_default=True)
@click.option("--z-dim", type=click.IntRange(1), default=TrainConfig.z_dim, show_default=True)
@click.option("--culture-dim", type=click.IntRange(1), default=TrainConfig.culture_dim, show_default=True)
@click.option(
    "--culture-vectors",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON {culture: [numbers]}: fixed culture vectors instead of learned embeddings.",
)
@click.option("--seed", type=SEED, default=TrainConfig.seed, show_default=True)
@click.option("--log-every", type=click.IntRange(1), default=TrainConfig.log_every, show_default=True)
@click.option("--sample-every", type=click.IntRange(1), default=TrainConfig.sample_every, show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(1), default=TrainConfig.checkpoint_every, show_default=True)
@click.option(
    "--max-minutes", type=POSITIVE, default=None, help="Stop early after this long."
)
@click.option(
    "--checkpoint-minutes",
    type=POSITIVE,
    default=None,
    help="Also checkpoint whenever this long has passed since the last checkpoint.",
)
@click.option(
    "--generator-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to export the generator (default: OUT/generator.safetensors).",
)
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default=TrainConfig.device, show_default=True)
@click.option("--bf16/--no-bf16", default=False, help="bf16 autocast (CUDA only).")
@click.option("--channels-last/--no-channels-last", default=False)
@click.option("--compile/--no-compile", "compile_", default=False, help="torch.compile the update steps.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.safetensors if it exists.")
def train_command(**options) -> None:
    """Train the culture-conditioned GAN (under torchrun: python -m culturelab.generation train)."""
    from culturelab.generation.train import ConfigError, train

    _setup_logging()
    options["compile"] = options.pop("compile_")
    cfg = TrainConfig(**options)
    try:
        path = train(cfg, progress=True)
    except (ConfigError, DatasetError, CheckpointError) as exc:
        raise BadInput(str(exc)) from exc
    click.echo(f"generator checkpoint: {path}")


def _conditions(mixes: tuple[str, ...], sweep_spec: str | None, steps: int, cultures: list[str]):
    from culturelab.generation.sample import Condition, parse_mix, sweep

    conditions = [parse_mix(m, cultures) for m in mixes]
    if sweep_spec:
        a, sep, b = sweep_spec.partition(",")
        if not sep:
            raise ValueError(f"--sweep {sweep_spec!r} is not CULTURE_A,CULTURE_B")
        conditions += sweep(a.strip(), b.strip(), steps, cultures)
    return conditions or [Condition({c: 1.0}) for c in cultures]


@generate.command("sample")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Generator or training checkpoint (default: the shipped {DEFAULT_CHECKPOINT.name}).",
)
@click.option(
    "--per-culture",
    type=click.IntRange(1),
    required=True,
    help="Images per culture (or per mix / sweep step).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Set folder to write.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--mix", "mixes", multiple=True, help="A culture mix, e.g. girih=0.5,kente=0.5 (repeatable).")
@click.option("--sweep", "sweep_spec", default=None, help="Sweep between two cultures, e.g. girih,kente.")
@click.option("--steps", type=click.IntRange(2), default=5, show_default=True, help="Number of sweep steps.")
@click.option("--resolution", type=int, default=None, help="Check that the checkpoint makes this size.")
@click.option("--name", default=None, callback=_set_name, help="Set name in the manifest (default: the folder name).")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it holds a stimulus set.")
def sample_command(
    checkpoint: Path | None,
    per_culture: int,
    out: Path,
    seed: int,
    mixes: tuple[str, ...],
    sweep_spec: str | None,
    steps: int,
    resolution: int | None,
    name: str | None,
    device: str,
    overwrite: bool,
) -> None:
    """Write a stimulus set (folder + manifest.json, schema culturelab.stimuli/1) and a contact sheet."""
    from culturelab.generation.checkpoint import load_generator, sha256_file
    from culturelab.generation.sample import write_stimulus_set
    from culturelab.generation.train import ConfigError, resolve_device

    _setup_logging()
    path = checkpoint or DEFAULT_CHECKPOINT
    try:
        dev = resolve_device(device)
        g, _ = load_generator(path, dev)
        if resolution is not None and resolution != g.config.resolution:
            raise ValueError(f"checkpoint {path} makes {g.config.resolution} px images, not --resolution {resolution}")
        conditions = _conditions(mixes, sweep_spec, steps, list(g.config.cultures))
        write_stimulus_set(
            g,
            out,
            conditions,
            per_culture,
            seed=seed,
            name=name,
            checkpoint_sha256=sha256_file(path),
            device=dev,
            overwrite=overwrite,
            progress=True,
        )
    except (CheckpointError, ConfigError, ValueError) as exc:
        raise BadInput(str(exc)) from exc
    click.echo(f"wrote {len(conditions) * per_culture} stimuli to {out} (manifest.json, contact-sheet.png)")


@generate.command("evaluate")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Checkpoint to evaluate (default: the shipped {DEFAULT_CHECKPOINT.name}).",
)
@click.option(
    "--set",
    "sets",
    type=click.Path(file_okay=False, path_type=Path),
    multiple=True,
    help="Stimulus set to judge instead of a checkpoint (repeatable: cGAN, nst and translation sets side by side).",
)
@click.option(
    "--content",
    "contents",
    type=click.Path(path_type=Path),
    multiple=True,
    help="With --set: the content images the sets were made from (default: the built-in ones).",
)
@click.option("--data", default="motifs", show_default=True, help="'motifs' or an ImageFolder of real images.")
@click.option(
    "--per-culture",
    type=click.IntRange(10),
    default=500,
    show_default=True,
    help="Generated (and, for motifs, real) images per culture; with --set, real images per culture.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Results JSON (default: evaluation.json beside the checkpoint; with --set, none unless given).",
)
@click.option(
    "--classifier-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --set: where trained culture classifiers are kept (default: ~/.cache/culturelab/classifiers).",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option(
    "--inception-weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Inception-v3 weights file for standard FID/KID via torch-fidelity (pip install 'culturelab[fidelity]').",
)
def evaluate_command(
    checkpoint: Path | None,
    sets: tuple[Path, ...],
    contents: tuple[Path, ...],
    data: str,
    per_culture: int,
    out: Path | None,
    classifier_dir: Path | None,
    seed: int,
    device: str,
    inception_weights: Path | None,
) -> None:
    """Culture accuracy, KID/FID in a culture classifier's feature space, and diversity vs real images.

    With --set, judges stimulus sets (any method) on the same footing and prints one table; sets made from
    content images also get content-preservation figures.
    """
    from culturelab.generation.evaluate import EvaluationError, evaluate
    from culturelab.generation.train import ConfigError, resolve_device

    _setup_logging()
    if sets:
        if checkpoint is not None or inception_weights is not None:
            raise BadInput("--set judges stimulus sets; leave out --checkpoint and --inception-weights")
        if out is not None:
            _check_writable(out)
        from culturelab.generation.set_evaluation import evaluate_sets

        try:
            results = evaluate_sets(
                list(sets),
                data=data,
                content_sources=list(contents) or None,
                per_culture=per_culture,
                seed=seed,
                device=resolve_device(device),
                classifier_dir=classifier_dir,
                progress=True,
                report_dir=out.parent if out else None,
            )
        except (ConfigError, DatasetError, EvaluationError) as exc:
            raise BadInput(str(exc)) from exc
        if out is not None:
            out.write_text(json.dumps(results, indent=2) + "\n")
        click.echo(results["table"])
        return
    if contents or classifier_dir is not None:
        raise BadInput("--content and --classifier-dir go with --set")
    path = checkpoint or DEFAULT_CHECKPOINT
    out = out or path.with_name(path.stem + ".evaluation.json")
    _check_writable(out)
    try:
        results = evaluate(
            path,
            data,
            per_culture=per_culture,
            seed=seed,
            device=resolve_device(device),
            inception_weights=inception_weights,
            progress=True,
            report_dir=out.parent,
        )
    except (CheckpointError, ConfigError, DatasetError, EvaluationError) as exc:
        raise BadInput(str(exc)) from exc
    out.write_text(json.dumps(results, indent=2) + "\n")
    summary = results["summary"]
    click.echo(
        f"culture accuracy {summary['culture_accuracy']:.3f}, diversity ratio {summary['diversity_ratio']:.2f}, "
        f"KID {summary['kid']:.4f}, FID {summary['fid']:.2f} (classifier features); results in {out}"
    )


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _number_list(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--style-weights {text!r} is not a comma-separated list of numbers") from None


@generate.command("stylize")
@click.option(
    "--content",
    "contents",
    type=click.Path(path_type=Path),
    multiple=True,
    help="Content image or folder of images (repeatable; default: the built-in house, tree, boat, fish, flower).",
)
@click.option(
    "--styles",
    "styles",
    multiple=True,
    required=True,
    help="CULTURE=FILE or CULTURE=motif (the built-in motifs); repeat a culture to average several styles.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Set folder to write.")
@click.option("--size", type=int, default=256, show_default=True, help="Output images are SIZE x SIZE px.")
@click.option("--steps", type=click.IntRange(1), default=300, show_default=True, help="Loss evaluations per image.")
@click.option(
    "--pyramid",
    type=int,
    default=1,
    show_default=True,
    help="Coarse-to-fine levels: 3 stylises at SIZE/4, then SIZE/2, then SIZE (--steps at each level).",
)
@click.option(
    "--color-match",
    is_flag=True,
    help="Recolour each content image to its culture's style colours (mean and covariance) before stylising.",
)
@click.option("--features", type=click.Choice(FEATURE_KINDS), default="imagenet", show_default=True)
@click.option(
    "--vgg-weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"torchvision's {IMAGENET_FILE} (default: torchvision's cache); never downloaded.",
)
@click.option("--content-layers", default="conv4_2", show_default=True)
@click.option("--style-layers", default="conv1_1,conv2_1,conv3_1,conv4_1,conv5_1", show_default=True)
@click.option("--style-weights", default=None, help="w_l per style layer, comma-separated (default: equal, sum 1).")
@click.option("--alpha", type=NON_NEGATIVE, default=1.0, show_default=True, help="Content loss weight.")
@click.option(
    "--beta",
    type=NON_NEGATIVE,
    default=None,
    help="Style loss weight (default: 1e6 with imagenet features, 1e8 with random ones).",
)
@click.option("--tv", "tv_weight", type=NON_NEGATIVE, default=0.0, show_default=True, help="Total variation.")
@click.option("--init", type=click.Choice(INITS), default="content", show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="lbfgs", show_default=True)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="fp32",
    show_default=True,
    help="bf16: VGG19 passes in bf16 (GPUs with bf16 tensor cores); losses and L-BFGS stay fp32.",
)
@click.option("--lr", type=POSITIVE, default=None, help="Step size (L-BFGS 1, Adam 0.02).")
@click.option("--batch-size", type=click.IntRange(1), default=4, show_default=True, help="Pairs optimised at once.")
@click.option("--motifs-per-culture", type=click.IntRange(1), default=4, show_default=True, help="For CULTURE=motif.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--name", default=None, callback=_set_name, help="Set name in the manifest (default: the folder name).")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it holds a stimulus set.")
def stylize_command(
    contents: tuple[Path, ...],
    styles: tuple[str, ...],
    out: Path,
    size: int,
    steps: int,
    pyramid: int,
    color_match: bool,
    features: str,
    vgg_weights: Path | None,
    content_layers: str,
    style_layers: str,
    style_weights: str | None,
    alpha: float,
    beta: float | None,
    tv_weight: float,
    init: str,
    optimizer: str,
    precision: str,
    lr: float | None,
    batch_size: int,
    motifs_per_culture: int,
    seed: int,
    name: str | None,
    device: str,
    overwrite: bool,
) -> None:
    """Neural style transfer (Gatys et al.): every content image in every culture's style, as a stimulus set."""
    from culturelab.generation.content_grid import GridInputError
    from culturelab.generation.content_images import BUILTIN_CONTENT_DIR
    from culturelab.generation.nst import NSTConfig
    from culturelab.generation.stylize import DEFAULT_BETA, write_nst_set
    from culturelab.generation.train import ConfigError, resolve_device
    from culturelab.generation.vgg import FeaturesError

    _setup_logging()
    try:
        cfg = NSTConfig(
            content_layers=_comma_list(content_layers),
            style_layers=_comma_list(style_layers),
            style_weights=_number_list(style_weights),
            alpha=alpha,
            beta=DEFAULT_BETA[features] if beta is None else beta,
            tv_weight=tv_weight,
            steps=steps,
            init=init,
            optimizer=optimizer,
            precision=precision,
            lr=lr,
        )
        write_nst_set(
            list(contents) or [BUILTIN_CONTENT_DIR],
            list(styles),
            out,
            cfg,
            size=size,
            pyramid=pyramid,
            color_match=color_match,
            features=features,
            vgg_weights=vgg_weights,
            seed=seed,
            batch_size=batch_size,
            motifs_per_culture=motifs_per_culture,
            device=resolve_device(device),
            name=name,
            overwrite=overwrite,
            progress=True,
        )
    except (GridInputError, FeaturesError, ConfigError, ValueError) as exc:
        raise BadInput(str(exc)) from exc
    manifest = json.loads((out / "manifest.json").read_text())
    click.echo(
        f"wrote {len(manifest['stimuli'])} stimuli ({len(manifest['cultures'])} cultures) to {out} "
        "(manifest.json, contact-sheet.png)"
    )


@generate.command("train-translation")
@click.option("--data", default="motifs", show_default=True, help="'motifs' or an ImageFolder DATA/<culture>/*.png")
@click.option(
    "--content",
    "contents",
    type=click.Path(path_type=Path),
    multiple=True,
    help="Content images or folders (repeatable; default: the built-in scenes).",
)
@click.option("--out", type=click.Path(file_okay=False), default="runs/translation", show_default=True)
@click.option("--resolution", type=click.Choice(["32", "64", "128"]), default="64", show_default=True)
@click.option("--per-culture", type=click.IntRange(1), default=500, show_default=True, help="For --data motifs.")
@click.option("--steps", type=click.IntRange(1), default=20000, show_default=True)
@click.option("--batch-size", type=click.IntRange(2), default=16, show_default=True, help="Half culture, half content.")
@click.option("--lr-g", type=POSITIVE, default=1e-4, show_default=True)
@click.option("--lr-d", type=POSITIVE, default=1e-4, show_default=True)
@click.option("--lambda-cls", type=NON_NEGATIVE, default=1.0, show_default=True, help="Culture classification.")
@click.option("--lambda-rec", type=NON_NEGATIVE, default=10.0, show_default=True, help="Cycle reconstruction.")
@click.option("--lambda-id", type=NON_NEGATIVE, default=0.0, show_default=True, help="Identity |x - G(x, c_x)|.")
@click.option(
    "--lambda-content",
    type=NON_NEGATIVE,
    default=0.0,
    show_default=True,
    help="Content loss (VGG19 conv4_2, research design §4.1) between content images and their restyled versions.",
)
@click.option(
    "--features",
    type=click.Choice(FEATURE_KINDS),
    default="random",
    show_default=True,
    help="VGG19 features of the content loss (random: seeded by --seed).",
)
@click.option(
    "--vgg-weights",
    type=click.Path(dir_okay=False),
    default=None,
    help=f"torchvision's {IMAGENET_FILE} for --features imagenet (default: torchvision's cache); never downloaded.",
)
@click.option("--g-channels", type=click.IntRange(4), default=32, show_default=True)
@click.option("--d-channels", type=click.IntRange(4), default=32, show_default=True)
@click.option("--res-blocks", type=click.IntRange(0), default=4, show_default=True)
@click.option(
    "--upsample",
    type=click.Choice(UPSAMPLINGS),
    default="transpose",
    show_default=True,
    help="G's upsamplings: StarGAN's transposed convolutions, or resize then convolve (no checkerboard).",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--log-every", type=click.IntRange(1), default=50, show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(1), default=500, show_default=True)
@click.option(
    "--max-minutes", type=POSITIVE, default=None, help="Stop early after this long."
)
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.safetensors if it exists.")
def train_translation_command(contents: tuple[Path, ...], resolution: str, **options) -> None:
    """Train the culture-conditioned translation GAN (StarGAN-style): one G restyles content to any culture."""
    from culturelab.generation.content_grid import GridInputError
    from culturelab.generation.train import ConfigError
    from culturelab.generation.translation_train import TranslationTrainConfig, train_translation

    _setup_logging()
    cfg = TranslationTrainConfig(content=tuple(map(str, contents)), resolution=int(resolution), **options)
    try:
        path = train_translation(cfg, progress=True)
    except (ConfigError, DatasetError, CheckpointError, GridInputError) as exc:
        raise BadInput(str(exc)) from exc
    click.echo(f"translation generator checkpoint: {path}")


@generate.command("translate")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--content",
    "contents",
    type=click.Path(path_type=Path),
    multiple=True,
    help="Content image or folder (repeatable; default: the built-in scenes).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Set folder to write.")
@click.option("--cultures", default=None, help="Comma-separated cultures to render (default: all the model's).")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--name", default=None, callback=_set_name, help="Set name in the manifest (default: the folder name).")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it holds a stimulus set.")
def translate_command(
    checkpoint: Path,
    contents: tuple[Path, ...],
    out: Path,
    cultures: str | None,
    batch_size: int,
    name: str | None,
    device: str,
    overwrite: bool,
) -> None:
    """Restyle content images to each culture with a translation checkpoint, as a stimulus set."""
    from culturelab.generation.content_grid import GridInputError
    from culturelab.generation.content_images import BUILTIN_CONTENT_DIR
    from culturelab.generation.sample import OutputError
    from culturelab.generation.train import ConfigError, resolve_device
    from culturelab.generation.translate import write_translation_set

    _setup_logging()
    try:
        write_translation_set(
            checkpoint,
            list(contents) or [BUILTIN_CONTENT_DIR],
            out,
            cultures=_comma_list(cultures) if cultures is not None else None,
            batch_size=batch_size,
            device=resolve_device(device),
            name=name,
            overwrite=overwrite,
            progress=True,
        )
    except (CheckpointError, ConfigError, GridInputError, OutputError) as exc:
        raise BadInput(str(exc)) from exc
    manifest = json.loads((out / "manifest.json").read_text())
    click.echo(
        f"wrote {len(manifest['stimuli'])} stimuli ({len(manifest['cultures'])} cultures) to {out} "
        "(manifest.json, contact-sheet.png)"
    )
