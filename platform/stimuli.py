"""Stimulus sets (docs/contracts.md, Contract 1): a folder with manifest.json and PNG images.

Import checks every entry (id, culture, mix, file size and sha256) before anything is stored and refuses
the whole set, naming the first bad entry. Images are stored in the data folder under their manifest
sha256, so the same image is stored once and its URL never changes (it can be cached forever), as the
pixels alone (`served_png`): nothing in a file's bytes may tell a participant what the manifest says.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import struct
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from culturelab.platform.models import Stimulus, StimulusSet

log = logging.getLogger(__name__)

SCHEMA = "culturelab.stimuli/1"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class StimulusSetError(ValueError):
    pass


class Entry(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    file: Annotated[str, StringConstraints(min_length=1)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    width: Annotated[int, Field(ge=1)]
    height: Annotated[int, Field(ge=1)]
    culture: str
    mix: dict[str, float] | None = None
    method: Literal["cgan", "nst", "translation", "human"]
    seed: int | None = None
    content: str | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    schema_: Literal["culturelab.stimuli/1"] = Field(alias="schema")
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    cultures: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=64)]], Field(min_length=1)
    ]
    generator: dict | None = None
    stimuli: Annotated[list[Entry], Field(min_length=1)]

    @model_validator(mode="after")
    def _entries(self) -> Manifest:
        seen: set[str] = set()
        for i, e in enumerate(self.stimuli):
            where = f"stimuli[{i}] ({e.id})"
            if e.id in seen:
                raise ValueError(f"{where}: id appears twice")
            seen.add(e.id)
            if e.culture not in self.cultures:
                raise ValueError(f"{where}: culture {e.culture!r} is not one of cultures {self.cultures}")
            mix = e.mix or {e.culture: 1.0}
            if unknown := sorted(set(mix) - set(self.cultures)):
                raise ValueError(f"{where}: mix names unknown culture(s) {unknown}")
            if any(w < 0 for w in mix.values()) or not math.isclose(sum(mix.values()), 1.0, abs_tol=1e-6):
                raise ValueError(f"{where}: mix weights must be non-negative and sum to 1")
            # `culture` is the largest weight, ties going to the earlier culture in `cultures`.
            top = max(self.cultures, key=lambda c: (mix.get(c, 0.0), -self.cultures.index(c)))
            if top != e.culture:
                raise ValueError(f"{where}: culture is {e.culture!r} but the largest mix weight is {top!r}")
            if Path(e.file).is_absolute() or ".." in Path(e.file).parts:
                raise ValueError(f"{where}: file must be a relative path inside the set folder")
        return self


def read_manifest(folder: Path) -> tuple[Manifest, str]:
    path = folder / "manifest.json"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StimulusSetError(f"{path}: cannot read the manifest ({exc.strerror})") from None
    try:
        manifest = Manifest.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise StimulusSetError(f"{path}: not valid JSON ({exc})") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise StimulusSetError(
            f"{path}: {loc + ': ' if loc else ''}{err['msg'].removeprefix('Value error, ')}"
        ) from None
    return manifest, hashlib.sha256(raw).hexdigest()


def file_problems(folder: Path, manifest: Manifest) -> list[str]:
    """Every image that is missing, is not a PNG, or differs from the manifest's sha256 or size."""
    problems = []
    for entry in manifest.stimuli:
        path = folder / entry.file
        try:
            data = path.read_bytes()
        except OSError:
            problems.append(f"stimulus {entry.id!r}: file {entry.file} is missing")
            continue
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            problems.append(f"stimulus {entry.id!r}: {entry.file} does not match its sha256 (corrupt or changed)")
        elif not data.startswith(PNG_SIGNATURE) or len(data) < 24:
            problems.append(f"stimulus {entry.id!r}: {entry.file} is not a PNG image")
        # The IHDR chunk always comes first: width and height are its first two big-endian ints.
        elif (size := struct.unpack(">II", data[16:24])) != (entry.width, entry.height):
            problems.append(
                f"stimulus {entry.id!r}: {entry.file} is {size[0]}x{size[1]}, "
                f"the manifest says {entry.width}x{entry.height}"
            )
    return problems


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Raises StimulusSetError naming the first bad image (see `file_problems`)."""
    if problems := file_problems(folder, manifest):
        raise StimulusSetError(problems[0])


def as_srgb(image):
    """``image`` (PIL) as RGB, or RGBA where it has transparency, converted to sRGB where it carries an ICC
    profile: browsers show an untagged PNG as sRGB."""
    from PIL import ImageCms

    mode = "RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB"
    if not image.info.get("icc_profile"):
        return image.convert(mode)
    source = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
    return ImageCms.profileToProfile(image.convert(mode), source, ImageCms.createProfile("sRGB"), outputMode=mode)


def served_png(data: bytes) -> bytes:
    """What a participant's browser gets of an image: its pixels and nothing else. Text chunks (a prompt, a
    seed, the tool that made it), profiles and timestamps are dropped, and the PNG is encoded anew (zlib
    level 9, so also smaller than most tools write), so its bytes hash to no manifest's sha256."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        out = io.BytesIO()
        as_srgb(image).save(out, format="PNG", compress_level=9)
    return out.getvalue()


def import_set(session: Session, folder: Path, media_dir: Path) -> StimulusSet:
    """Imports a stimulus set, or returns the one already imported from an identical manifest."""
    manifest, manifest_sha = read_manifest(folder)
    existing = session.scalar(select(StimulusSet).where(StimulusSet.manifest_sha256 == manifest_sha))
    if existing is not None:
        # The manifest pins every file's sha256, so an identical manifest means identical content,
        # but the files are still checked: a corrupted copy must not pass unnoticed.
        verify_files(folder, manifest)
        return existing
    verify_files(folder, manifest)
    media_dir.mkdir(parents=True, exist_ok=True)
    for entry in manifest.stimuli:
        target = media_dir / f"{entry.sha256}.png"
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(served_png((folder / entry.file).read_bytes()))
            tmp.replace(target)
    stimulus_set = StimulusSet(
        name=manifest.name,
        manifest_sha256=manifest_sha,
        cultures=manifest.cultures,
        generator=manifest.generator,
    )
    stimulus_set.stimuli = [
        Stimulus(
            key=e.id,
            sha256=e.sha256,
            width=e.width,
            height=e.height,
            culture=e.culture,
            mix=e.mix or {e.culture: 1.0},
            method=e.method,
            seed=e.seed,
            content=e.content,
        )
        for e in manifest.stimuli
    ]
    session.add(stimulus_set)
    session.flush()
    log.info("imported stimulus set %s (%d images)", manifest.name, len(manifest.stimuli))
    return stimulus_set
