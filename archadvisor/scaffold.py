"""Render a Recommendation into a ready-to-run project, in memory first, then write it.

A project is composed of four parts:

* ``templates/core/``: the task-independent core every project gets (train.py, evaluate.py, predict.py,
  export.py, checkpoint.py, errors.py, config.yaml, README.md, pyproject.toml, the core tests);
* ``templates/tasks/<task>/``: what differs for the task (task.py with the hooks the core calls, data.py, the
  bundled demo, the task's tests, and the ``_*.j2`` partials the core's config.yaml and README.md import);
  a task file with the same path as a core file replaces it;
* the family's model file as ``model.py``, ``weights.py`` beside it, and any zoo file the model file loads
  from its own folder (a U-Net's encoder family: ``resnet.py``, ``mobilenet_v3.py``), under its own name;
* ``.archadvisor.yaml``: the answers, tool version and rules digest, so the project can be regenerated.

``*.j2`` files are rendered with Jinja2 (both folders are on the template search path, the task's first);
everything else is copied byte for byte, binary included; ``_*.j2`` partials are not written.

Rendering uses ``StrictUndefined``: a template that reads a key the Recommendation lacks fails with the key's
name instead of writing an empty value. Nothing is written until every file has rendered, and a non-empty
output folder is left untouched unless ``force`` is given (cookiecutter / copier behaviour).

This module never imports torch: ``archadvisor scaffold`` stays fast.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import jinja2
import yaml

from archadvisor import __version__, resources
from archadvisor import ultralytics_project as yolo
from archadvisor.errors import ArchAdvisorError
from archadvisor.resources import LIBRARY_PROJECTS, model_modules, templates_dir

if TYPE_CHECKING:
    from archadvisor.recommendation import Recommendation

__all__ = [
    "SCAFFOLD_TASKS",
    "project_name",
    "supported_augmentations",
    "HF_PREFIX",
    "FileAction",
    "ScaffoldError",
    "plan",
    "render_project",
    "write_project",
    "check_out",
]

SCAFFOLD_TASKS = (
    "classification",
    "semantic-segmentation",
    "text",
    "detection",
    "instance-segmentation",
    "time-series-classification",
    "time-series",
)
# the task of each library project (archadvisor.resources.LIBRARY_PROJECTS), whose demo/ it shares (copied)
_LIBRARY_TASK = {"time-series-tft": "time-series"}
# a generated.build of this form is a pretrained Hugging Face model (the hub id after it), not a model.py variant
HF_PREFIX = "hf:"
# tasks that share another task's part: instance segmentation is detection with masks on (Mask R-CNN)
_TASK_PARTS = {"instance-segmentation": "detection"}


def _task_dir(task: str) -> Path:
    return templates_dir() / "tasks" / _TASK_PARTS.get(task, task)


@cache
def supported_augmentations(task: str = "classification") -> tuple[str, ...]:
    """The augmentation.ops names the task's generated data.py can build: its SUPPORTED_OPS, read (not imported:
    data.py imports torch) from the template, so the renderer and the project cannot disagree."""
    import ast

    source = _task_dir(task) / "data.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SUPPORTED_OPS" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "SUPPORTED_OPS" and node.value:
            return tuple(ast.literal_eval(node.value))
    raise ScaffoldError(f"templates/tasks/{task}/data.py defines no SUPPORTED_OPS")


def project_name(folder_name: str) -> str:
    """A valid Python package name for a project folder: ``my-project`` -> ``my_project``, ``3d`` -> ``p3d``.

    Characters other than letters, digits and ``_`` become ``_`` (runs collapsed, ends trimmed), a leading digit
    gets a ``p`` prefix, a keyword gets a ``_project`` suffix, and nothing usable at all gives ``project``.
    """
    import re
    import unicodedata

    ascii_name = unicodedata.normalize("NFKD", folder_name).encode("ascii", "ignore").decode("ascii")
    name = re.sub(r"[^0-9A-Za-z_]+", "_", ascii_name).strip("_").lower()
    if not name:
        return "project"
    if name[0].isdigit():
        name = "p" + name
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        name += "_project"
    return name


# never copied from the templates: caches left by running the template's own tests in place
_IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", "runs"}
_IGNORED_SUFFIXES = (".pyc", ".pyo")
_MANIFEST = ".archadvisor.yaml"

Status = Literal["create", "identical", "conflict"]


class ScaffoldError(ArchAdvisorError):
    """The project cannot be generated or written; the one-line message says why (the CLI exits with 2)."""


@dataclass(frozen=True)
class FileAction:
    """What writing one file does to the output folder."""

    path: str  # relative, POSIX separators
    status: Status


# --- rendering ---------------------------------------------------------------------------------------------


def _yaml_inline(value: Any) -> str:
    """A value as one line of YAML (flow style): ``[0.35, 1.0]``, ``{name: sgd, momentum: 0.9}``, ``null``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=2**31, sort_keys=False)
    return text.removesuffix("...\n").strip()


def _comment(value: Any) -> str:
    """Text for a ``# ...`` comment: one line whatever it holds. A line break (``\\n``, ``\\r``, NEL, U+2028)
    would end the comment and turn the rest into YAML keys, so every non-printable character is escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(value))


def _toml_str(value: Any) -> str:
    """A TOML basic string (JSON string escaping is valid TOML for the characters we emit)."""
    return json.dumps(str(value))


def _environment(roots: list[Path], why: Callable[[str], str]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(r) for r in roots]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["yaml"] = _yaml_inline
    env.filters["toml"] = _toml_str
    env.filters["pad"] = lambda text, width: str(text).ljust(width - 1) + " "
    env.filters["comment"] = _comment
    env.globals["why"] = lambda key: _comment(why(key))  # provenance goes into comments only
    env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)
    return env


def _check_renderable(rec: Mapping[str, Any], name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ScaffoldError(
            f"project name {name!r} is not a valid Python identifier (letters, digits and _, not starting with a digit)"
        )
    task = rec.get("task")
    arch = rec.get("architecture") or {}
    if task not in SCAFFOLD_TASKS:
        raise ScaffoldError(
            f"scaffold cannot generate a project for task {task!r}: it generates {', '.join(SCAFFOLD_TASKS)} "
            "projects (`archadvisor recommend` still gives the full recommendation)"
        )
    generated = rec.get("generated")
    if not generated:
        raise ScaffoldError(
            f"scaffold has no model file for {arch.get('name', '?')} ({arch.get('family', '?')}) and no generatable "
            "candidate was ranked; pass --arch with a model archadvisor generates (`archadvisor archs --task ...`)"
        )
    if generated["module"] == yolo.MODULE:
        return  # checked by ultralytics_project.render: the task, the model YAML
    if generated["module"] in LIBRARY_PROJECTS:
        project = LIBRARY_PROJECTS[generated["module"]]
        if _LIBRARY_TASK[project] != task:
            raise ScaffoldError(
                f"generated.module {generated['module']!r} is a {_LIBRARY_TASK[project]} project, not {task}"
            )
        return  # a project of its own on the model's library: no model file, no augmentation ops
    if generated["module"] not in model_modules():
        raise ScaffoldError(f"generated.module {generated['module']!r} is not a model file shipped with archadvisor")
    if generated["build"].startswith(HF_PREFIX) and not (rec.get("training") or {}).get("pretrained"):
        raise ScaffoldError(
            f"{generated['name']} is a pretrained {generated['build'].removeprefix(HF_PREFIX)} encoder: it is "
            "generated only for fine-tuning (--pretrained); from scratch pass --arch with a model trained on your "
            "data (`archadvisor archs --task " + str(task) + "`)"
        )
    ops = [op.get("name") for op in (rec.get("augmentation") or {}).get("ops", [])]
    supported = supported_augmentations(task)
    unknown = [op for op in ops if op not in supported]
    if unknown:
        raise ScaffoldError(
            f"the generated project cannot build augmentation ops {unknown}; it supports {', '.join(supported) or 'none'}"
        )


def _template_files(root: Path) -> dict[str, Path]:
    """The files under ``root`` by relative POSIX path, without caches a local run of the template leaves."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() or _IGNORED_PARTS & set(rel.parts) or path.name.endswith(_IGNORED_SUFFIXES):
            continue
        if rel.parts[:2] in (
            ("demo", "digits"),
            ("demo", "digit_scenes"),
            ("demo", "digits_coco"),
        ):  # demo data a local run writes
            continue
        files[rel.as_posix()] = path
    return files


def encoder_files(module: str, build: str) -> list[str]:
    """The zoo files ``build`` of ``templates/models/<module>.py`` loads from its own folder, e.g. ``["resnet.py"]``
    for ``unet_resnet34``: the model file's ``VARIANTS[build]`` when it is an ``EncoderConfig("<family>", ...)``.

    Read from the file's syntax tree (the file imports torch; scaffold does not), the same literal the model file's
    ``required_files`` reads at run time (tests/test_scaffold.py checks that the two agree)."""
    import ast

    tree = ast.parse(resources.model_file(module).read_text(encoding="utf-8"))
    for node in tree.body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else (node.targets[0] if isinstance(node, ast.Assign) else None)
        )
        if getattr(target, "id", None) != "VARIANTS" or not isinstance(node.value, ast.Dict):
            continue
        for key, value in zip(node.value.keys, node.value.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == build and isinstance(value, ast.Call):
                if getattr(value.func, "id", None) == "EncoderConfig" and value.args:
                    return [f"{ast.literal_eval(value.args[0])}.py"]
    return []


def _augmentation_ops(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ops as config.yaml lists them, ``{name, **params}``: the recipe has already decided every setting."""
    return [{"name": op["name"], **(op.get("params") or {})} for op in (rec.get("augmentation") or {}).get("ops", [])]


def _manifest(rec: Mapping[str, Any], name: str, files: Mapping[str, bytes]) -> bytes:
    """``.archadvisor.yaml``: enough to regenerate the project, and no timestamp, so re-rendering is reproducible."""
    inputs = dict(rec.get("inputs") or {})
    generated = rec["generated"]
    flags = []
    for key, value in inputs.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        flags.append(
            flag if value is True else f"--no-{key.replace('_', '-')}" if value is False else f"{flag} {value}"
        )
    body = {
        "archadvisor_version": __version__,
        "recommendation_tool_version": rec.get("tool_version"),
        "rules_digest": rec.get("rules_digest"),
        "name": name,
        "task": rec["task"],
        "arch": generated["name"],
        "model_file": (
            f"ultralytics:{generated['build']}"
            if generated["module"] == yolo.MODULE
            else f"templates/tasks/{LIBRARY_PROJECTS[generated['module']]}/"
            if generated["module"] in LIBRARY_PROJECTS
            else f"templates/models/{generated['module']}.py"
        ),
        "inputs": inputs,
        # the inputs as given: adding --arch for an architecture the rules chose would record it as forced,
        # which changes the provenance in config.yaml and README.md (an untouched project must regenerate as is)
        "regenerate": f"archadvisor scaffold {' '.join(flags)} --name {name} --out . --force",
        "files": {path: "sha256:" + hashlib.sha256(data).hexdigest() for path, data in sorted(files.items())},
    }
    header = (
        "# Written by `archadvisor scaffold`: the answers this project was generated from.\n"
        "# `regenerate` re-creates it (files you changed show up as conflicts; --force overwrites them);\n"
        "# `files` are the generated contents' digests, to tell your edits from the generated code.\n"
    )
    return (header + yaml.safe_dump(body, sort_keys=False, width=120)).encode("utf-8")


def render_project(recommendation: Recommendation, *, name: str) -> dict[str, bytes]:
    """Render the whole project for ``rec`` in memory: relative POSIX path -> file contents.

    Raises:
        ScaffoldError: the task or family cannot be scaffolded, ``name`` is not a Python identifier, the
            model file is missing, or a template needs a key the Recommendation lacks.
    """
    rec = recommendation.to_json()
    _check_renderable(rec, name)
    if rec["generated"]["module"] in LIBRARY_PROJECTS:
        return _render_library_project(recommendation, rec, name)
    root = templates_dir()
    if rec["generated"]["module"] == yolo.MODULE:  # a YOLO choice: a project on ultralytics' own trainer
        try:
            files = yolo.render(
                rec, name, __version__, lambda roots: _environment(roots, recommendation.why),
                demo_npz=(root / "tasks" / "detection" / "demo" / "digits.npz").read_bytes(),
                errors_py=(root / "core" / "errors.py").read_bytes(),
            )  # fmt: skip
        except (yolo.UltralyticsError, jinja2.UndefinedError) as e:
            raise ScaffoldError(str(e)) from None
        files[_MANIFEST] = _manifest(rec, name, files)
        return dict(sorted(files.items()))
    core, task_dir = root / "core", _task_dir(rec["task"])
    try:
        model_file = resources.model_file(rec["generated"]["module"])
    except ValueError as exc:
        raise ScaffoldError(str(exc)) from None

    env = _environment([task_dir, core], recommendation.why)
    context = {"rec": rec, "name": name, "version": __version__, "aug_ops": _augmentation_ops(rec)}
    sources = {**_template_files(core), **_template_files(task_dir)}  # a task file replaces the core's
    files = _render_sources(env, context, sources)
    files["model.py"] = model_file.read_bytes()
    for extra in encoder_files(rec["generated"]["module"], rec["generated"]["build"]):
        try:  # through the whitelist too: only shipped model files
            files[extra] = resources.model_file(extra.removesuffix(".py")).read_bytes()
        except ValueError as exc:
            raise ScaffoldError(str(exc)) from None
    files["weights.py"] = (root / "models" / "weights.py").read_bytes()
    files[_MANIFEST] = _manifest(rec, name, files)
    return dict(sorted(files.items()))


def _render_sources(env: Any, context: dict[str, Any], sources: dict[str, Path]) -> dict[str, bytes]:
    """Every source file of a project: ``*.j2`` rendered (``_*.j2`` partials are imported by others, not
    written), the rest copied as bytes."""
    files: dict[str, bytes] = {}
    for rel, path in sorted(sources.items()):
        if PurePosixPath(rel).name.startswith("_") and rel.endswith(".j2"):
            continue
        if rel.endswith(".j2"):
            try:
                text = env.get_template(rel).render(context)
            except jinja2.UndefinedError as e:
                raise ScaffoldError(f"template {rel} needs a value the recommendation lacks: {e.message}") from e
            files[rel.removesuffix(".j2")] = text.encode("utf-8")
        else:
            files[rel] = path.read_bytes()
    return files


def _render_library_project(recommendation: Recommendation, rec: dict[str, Any], name: str) -> dict[str, bytes]:
    """A project generated on the model's library (templates/tasks/<LIBRARY_PROJECTS[module]>/): its own
    train.py and predict.py under the library's trainer, no core files and no model.py; the demo folder is the
    owned-model task's."""
    root = templates_dir()
    project = LIBRARY_PROJECTS[rec["generated"]["module"]]
    folder = root / "tasks" / project
    env = _environment([folder, root / "core"], recommendation.why)  # core: _macros.j2 only
    context = {"rec": rec, "name": name, "version": __version__, "aug_ops": _augmentation_ops(rec)}
    sources = _template_files(folder)
    demo = _task_dir(_LIBRARY_TASK[project]) / "demo"
    sources.update({f"demo/{rel}": path for rel, path in _template_files(demo).items()})  # fmt: skip
    files = _render_sources(env, context, sources)
    files[_MANIFEST] = _manifest(rec, name, files)
    return dict(sorted(files.items()))


# --- writing -----------------------------------------------------------------------------------------------


def _target(out: Path, rel: str) -> Path:
    """``out / rel``, refusing absolute paths and anything that would land outside ``out``."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or not pure.parts or ".." in pure.parts or "\\" in rel or ":" in rel:
        raise ScaffoldError(f"refusing to write {rel!r}: not a relative path inside the project")
    target = out / Path(*pure.parts)
    if not target.resolve().is_relative_to(out.resolve()):
        raise ScaffoldError(f"refusing to write {rel!r}: it resolves outside {out}")
    return target


def plan(files: Mapping[str, bytes], out: Path) -> list[FileAction]:
    """What writing ``files`` into ``out`` would do to each file: create, identical or conflict."""
    actions = []
    for rel, data in files.items():
        target = _target(out, rel)
        if not target.exists():
            status: Status = "create"
        elif target.is_file() and target.read_bytes() == data:
            status = "identical"
        else:
            status = "conflict"
        actions.append(FileAction(rel, status))
    return actions


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# staging folders carry the writing process's id: one whose process is gone was left by a killed scaffold
_STAGING = ".archadvisor-staging-"
_COMMITTED = "COMMITTED"  # in a --force staging folder: every file is staged; what remains is moving them in
# file systems that hold no user files (a path there is a mistake, and writing may reach the kernel)
_VIRTUAL_FS = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs",
               "configfs", "pstore", "bpf", "mqueue", "fusectl", "efivarfs", "binfmt_misc", "autofs"}  # fmt: skip


def _mount_type(path: Path) -> str | None:
    """The file system type of the mount holding ``path`` (Linux /proc/self/mounts), or None if unknown."""
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    best, kind = "", None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        if (str(path) == point or str(path).startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def check_out(out: Path) -> Path:
    """``out`` as an absolute path, after checking that a project folder can be written there.

    Refused, each in one line: a symbolic link (dangling or not: name the folder itself), something that is not
    a directory, a path below a file or device, a path in a virtual file system (/proc, /sys, /dev), and a
    folder this process may not write in.
    """
    out = Path(os.path.abspath(out))
    if out.is_symlink():
        target = os.readlink(out)
        if not out.exists():
            raise ScaffoldError(f"--out {out} is a dangling symbolic link (to {target}); pass a real folder")
        raise ScaffoldError(f"--out {out} is a symbolic link (to {target}); pass the folder it points to")
    if out.exists() and not out.is_dir():
        raise ScaffoldError(f"--out {out} exists and is not a directory")
    existing = out
    while not existing.exists() and not existing.is_symlink():
        existing = existing.parent
    if not existing.is_dir():
        what = "a file" if existing.is_file() else "not a directory (a device, socket or dangling link)"
        raise ScaffoldError(f"--out {out}: {existing} is {what}, so no folder can be created under it")
    kind = _mount_type(existing.resolve())
    if kind in _VIRTUAL_FS:
        raise ScaffoldError(f"--out {out} is in a virtual file system ({kind}); pass a folder on a disk")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ScaffoldError(f"--out {out}: cannot write in {existing} (permission denied)")
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's process
        return True
    return True


def _stale(folder: Path, prefix: str) -> list[Path]:
    """Staging folders named ``prefix<pid>-...`` in ``folder`` whose process is gone."""
    found = []
    for entry in folder.glob(_glob_escape(prefix) + "*") if folder.is_dir() else []:
        pid = entry.name.removeprefix(prefix).split("-", 1)[0]
        if entry.is_dir() and not entry.is_symlink() and pid.isdigit() and not _alive(int(pid)):
            found.append(entry)
    return found


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _recover(out: Path) -> None:
    """Finish or discard what a killed scaffold left: a --force staging folder inside ``out`` that was complete
    is moved in (the interrupted replace completes), an incomplete one and a fresh scaffold's sibling are removed."""
    for staging in _stale(out.parent, f".{out.name}{_STAGING}"):
        shutil.rmtree(staging, ignore_errors=True)
    for staging in _stale(out, _STAGING):
        if (staging / _COMMITTED).is_file():
            _move_in(staging, out)
        shutil.rmtree(staging, ignore_errors=True)


def _check_shapes(files: Mapping[str, bytes], out: Path) -> None:
    """Every generated file can replace what ``out`` holds: no folder where a file goes, no file where a
    folder goes (checked before anything is written)."""
    for rel in files:
        target = _target(out, rel)
        if target.is_dir():
            raise ScaffoldError(f"{target} is a directory where scaffold writes the file {rel}; move it away first")
        for parent in PurePosixPath(rel).parents:
            if str(parent) != "." and (out / parent).exists() and not (out / parent).is_dir():
                raise ScaffoldError(
                    f"{out / parent} is a file where scaffold writes the folder {parent}/; move it away"
                )


def _stage(files: Mapping[str, bytes], staging: Path) -> None:
    mode = 0o666 & ~_umask()  # mkstemp-style 0600 would hide a project file from its group
    for rel, data in files.items():
        target = _target(staging, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as fh:
            fh.write(data)
        os.chmod(target, mode)


def _move_in(staging: Path, out: Path) -> None:
    """Move the staged files (listed in COMMITTED, the manifest last) over their targets in ``out``."""
    for rel in json.loads((staging / _COMMITTED).read_text(encoding="utf-8")):
        source = staging / rel
        if source.is_file():  # already moved when a killed move is completed
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)


def write_project(files: Mapping[str, bytes], out: Path, *, force: bool = False) -> list[FileAction]:
    """Write the rendered ``files`` into ``out``, all or nothing; returns what happened to each file.

    A missing or empty ``out`` is filled through a hidden sibling folder that is renamed into place. A
    non-empty ``out`` is refused (and left untouched) unless ``force``. With ``force`` the changed files are
    staged in a hidden folder inside ``out`` first, then moved over the old ones (the manifest last); files
    the project does not generate (your data, runs/, notes) stay where they are. A scaffold killed while
    staging leaves ``out`` as it was; one killed while moving files in is completed by the next scaffold into
    the same folder, which also removes staging folders killed runs left behind.

    Raises:
        ScaffoldError: ``out`` cannot hold a project (see ``check_out``), is not empty and ``force`` is false,
            holds a folder where a generated file goes (or a file where a folder goes), or a path escapes it.
    """
    out = check_out(out)
    for rel in files:
        _target(out, rel)  # validates every path before anything is written
    try:
        _recover(out)
        if out.is_dir() and any(out.iterdir()):
            if not force:
                entries = sum(1 for _ in out.iterdir())
                raise ScaffoldError(f"{out} is not empty ({entries} entries); use --force to write into it")
            _check_shapes(files, out)
            actions = plan(files, out)
            _replace(files, out, [a.path for a in actions if a.status != "identical"])
            return actions
        actions = plan(files, out)
        _create(files, out)
    except OSError as e:
        raise ScaffoldError(f"cannot write {out}: {e.strerror or e}") from None
    return actions


def _replace(files: Mapping[str, bytes], out: Path, changed: list[str]) -> None:
    if not changed:
        return
    changed = sorted(changed, key=lambda rel: rel == _MANIFEST)  # the manifest last: it describes the others
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{os.getpid()}-", dir=out))
    try:
        _stage({rel: files[rel] for rel in changed}, staging)
        with open(staging / _COMMITTED, "w", encoding="utf-8") as fh:
            json.dump(changed, fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _move_in(staging, out)
    shutil.rmtree(staging, ignore_errors=True)


def _create(files: Mapping[str, bytes], out: Path) -> None:
    created = []  # parent folders this call makes, removed again if it fails
    for parent in reversed(out.parents):
        if not parent.exists():
            parent.mkdir()
            created.append(parent)
    staging = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}{_STAGING}{os.getpid()}-", dir=out.parent))
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp creates 0700
        _stage(files, staging)
        if out.is_dir():
            out.rmdir()  # empty: checked by the caller
        staging.rename(out)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for parent in reversed(created):
            parent.rmdir()
        raise
