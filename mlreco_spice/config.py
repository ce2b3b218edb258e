"""YAML configuration: includes, ``--set`` overrides, validation, defaults.

A chain config has the top-level sections ``io``, ``model``, ``train``,
``predict`` and ``analysis`` (see :mod:`mlreco_spice.defaults` for every key
and its default). Loading does, in order:

1. read the YAML file and, recursively, the files named by ``include:``
   (a string or a list; the including file wins on conflicts);
2. resolve path-valued keys relative to the file that sets them;
3. apply ``--set key.path=value`` overrides (values parsed as YAML, paths
   relative to the working directory);
4. validate every key against the schema, with "did you mean" suggestions (a key
   renamed with a change of unit, ``defaults.RENAMED_KEYS``, names its successor);
5. fill in defaults.
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from .config_renames import renamed_off
from .config_validation import raise_all, schema_problems, where
from .defaults import DEFAULTS, PATH_KEYS, Spec, stage_schema
from .errors import ConfigError

__all__ = ["ConfigError", "load_config", "parse_overrides", "apply_overrides",
           "validate_config", "fill_defaults", "get_key", "find_config", "dump_config",
           "default_output_dir"]

PACKAGE_ROOT = Path(__file__).resolve().parent


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def yaml_load(text: Any) -> Any:
    """Parse YAML text or a stream with the config loader."""
    return yaml.load(text, Loader=_Loader)


# ---------------------------------------------------------------- locating --
def find_config(name: str) -> Path:
    """Resolve a config argument: a path, or the name of a shipped config.

    ``chain_configs/predict.yaml``, ``predict.yaml`` and ``predict`` all find
    the shipped file from any working directory.
    """
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    candidate = _shipped_config(name)
    if candidate is not None:
        return candidate
    raise ConfigError(f"config file '{name}' not found (working directory {os.getcwd()}). "
                      f"Shipped configs: {_shipped_names()}")


def _shipped_dir() -> Path:
    import chain_configs  # installed as package data next to mlreco_spice

    return Path(chain_configs.__file__).resolve().parent


def _shipped_config(name: str) -> Optional[Path]:
    """The shipped config called ``name`` (``predict``, ``predict.yaml``), or None."""
    path = Path(name)
    if len(path.parts) != 1:
        return None
    stem = path.name if path.suffix in (".yaml", ".yml") else path.name + ".yaml"
    candidate = _shipped_dir() / stem
    return candidate if candidate.is_file() else None


def _shipped_names() -> str:
    return ", ".join(sorted(p.name for p in _shipped_dir().glob("*.yaml")))


# ----------------------------------------------------------------- reading --
def _read_yaml(path: Path) -> Dict[str, Any]:
    try:
        with open(path) as stream:
            data = yaml_load(stream)
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file '{path}' is not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping at the top level, "
                          f"not {type(data).__name__}")
    return data


def _matches(pattern: Sequence[str], keys: Sequence[str]) -> bool:
    return len(pattern) == len(keys) and all(p in ("*", k) for p, k in zip(pattern, keys))


def _resolve_paths(tree: Dict[str, Any], base: Path, prefix: Tuple[str, ...] = ()) -> None:
    """Make path-valued keys absolute relative to ``base`` (in place)."""

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not os.path.isabs(os.path.expanduser(value)):
            return str(base / value)
        if isinstance(value, str):
            return os.path.expanduser(value)
        return value

    for key, value in tree.items():
        keys = prefix + (str(key),)
        if isinstance(value, dict):
            _resolve_paths(value, base, keys)
        elif any(_matches(p, keys) for p in PATH_KEYS):
            tree[key] = [fix(v) for v in value] if isinstance(value, list) else fix(value)


def _merge(base: Dict[str, Any], top: Dict[str, Any]) -> Dict[str, Any]:
    """Deep-merge ``top`` over ``base`` (new dict; lists are replaced whole)."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_tree(path: Path, seen: Tuple[Path, ...] = (),
               problems: Optional[List[str]] = None) -> Dict[str, Any]:
    """The merged tree of ``path`` and its includes; schema problems go to ``problems``."""
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in seen + (path,))
        raise ConfigError(f"circular include: {chain}")
    tree = _read_yaml(path)
    if not tree:
        raise ConfigError(f"config file '{path}' is empty: it sets no keys. Start from a "
                          f"shipped config, e.g. a first line `include: spice_train.yaml`, and "
                          f"change what differs (shipped configs: {_shipped_names()})")
    _resolve_paths(tree, path.parent)
    includes = tree.pop("include", None) or []
    if isinstance(includes, str):
        includes = [includes]
    merged: Dict[str, Any] = {}
    for inc in includes:
        inc_path = Path(os.path.expanduser(inc))
        if not inc_path.is_absolute():
            inc_path = path.parent / inc_path
        if not inc_path.is_file():
            # Like -c: a shipped config by name, from any directory (a file beside wins).
            inc_path = _shipped_config(inc) or inc_path
        if not inc_path.is_file():
            raise ConfigError(f"config file '{path}': include '{inc}' not found (looked at "
                              f"{inc_path} and the shipped configs). Shipped configs: "
                              f"{_shipped_names()}")
        merged = _merge(merged, _load_tree(inc_path, seen + (path,), problems))
    # Each file is checked on its own, so that every error names the file holding the key.
    if problems is not None:
        problems.extend(schema_problems(tree, f"config file '{path}'"))
    return _merge(merged, renamed_off(tree))



# --------------------------------------------------------------- overrides --
def parse_overrides(items: Iterable[str]) -> List[Tuple[List[str], Any]]:
    """Parse ``key.path=value`` strings; values are YAML (``=3``, ``=[a, b]``)."""
    parsed = []
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"--set expects key.path=value, got '{item}'")
        key, _, raw = item.partition("=")
        keys = [k for k in key.strip().split(".") if k]
        if not keys:
            raise ConfigError(f"--set '{item}': empty key path")
        try:
            value = yaml_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"--set '{item}': value is not valid YAML ({err})") from None
        parsed.append((keys, value))
    return parsed


def apply_overrides(cfg: Dict[str, Any], items: Iterable[str]) -> Dict[str, Any]:
    """Apply ``--set`` overrides to a config (returns a new dict)."""
    cfg = copy.deepcopy(cfg)
    for keys, value in parse_overrides(items):
        node = cfg
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {'.'.join(keys)}: '{'.'.join(keys[:depth + 1])}' "
                                  f"holds a {type(child).__name__}, not a mapping")
            node = child
        node[keys[-1]] = value
        _resolve_paths(cfg, Path.cwd())  # paths given on the command line: relative to cwd
    return cfg


# -------------------------------------------------------------- validation --
def validate_config(cfg: Dict[str, Any], require: Iterable[str] = (),
                    source: Optional[str] = None) -> None:
    """Check every key and type against the schema; raise :class:`ConfigError`.

    Parameters
    ----------
    cfg : dict
        Config to check (before or after defaults are filled in).
    require : iterable of str
        Dotted key paths that must be present and non-empty.
    source : str, optional
        Where ``cfg`` came from (``"config file 'x.yaml'"``), put before the
        message. Every problem found is listed, one per line.
    """
    errors = schema_problems(cfg, source)
    for key in require:
        value = get_key(cfg, key, default=None)
        if value in (None, [], "", {}):
            errors.append(where(source, f"missing required key '{key}' (set it in the config "
                                         f"file or with --set {key}=...)"))
    raise_all(errors)


def default_output_dir(config: Optional[str]) -> str:
    """``train.output_dir`` when no config sets it: ``runs/<config name>`` in the working directory.

    Resolved from the working directory, not from the config file, so that a
    shipped config given by name (``-c spice_train``) never writes into the
    installation.
    """
    stem = Path(config).stem if config else "spice"
    return str(Path.cwd() / "runs" / stem)


def _defaults_of(schema: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    for key, value in schema.items():
        if isinstance(value, Spec):
            out[key] = copy.deepcopy(value.default)
        elif isinstance(value, dict):
            out[key] = _defaults_of(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def fill_defaults(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Return ``cfg`` merged over the defaults (stage blocks included)."""
    out = _merge(_defaults_of(DEFAULTS), cfg)
    out.pop("include", None)
    modules = out["model"]["modules"]
    for stage in list(modules):
        modules[stage] = _merge(_defaults_of(stage_schema(stage)), modules[stage] or {})
    return out


def get_key(cfg: Dict[str, Any], dotted: str, default: Any = KeyError) -> Any:
    """``get_key(cfg, "train.iterations")``; raises ConfigError when absent without default."""
    node: Any = cfg
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            if default is KeyError:
                raise ConfigError(f"missing required key '{dotted}'")
            return default
        node = node[key]
    return node


def load_config(path: Optional[str], overrides: Iterable[str] = (),
                require: Iterable[str] = ()) -> Dict[str, Any]:
    """Load, override, validate and complete a config.

    Parameters
    ----------
    path : str or None
        YAML file, or the name of a shipped config (see :func:`find_config`).
        ``None`` starts from the defaults alone.
    overrides : iterable of str
        ``key.path=value`` strings as given to ``--set``.
    require : iterable of str
        Key paths that must be set (e.g. ``io.dataset.files`` for training).

    Returns
    -------
    dict
        The complete config. ``cfg["_source"]`` is not added; the caller
        keeps the path if it needs provenance.
    """
    problems: List[str] = []
    tree = _load_tree(find_config(path), problems=problems) if path else {}
    raise_all(problems)
    overrides = list(overrides or ())
    tree = renamed_off(apply_overrides(tree, overrides))
    # The files were checked one by one; what is new here came from the overrides.
    validate_config(tree, source="--set" if overrides else None)
    cfg = fill_defaults(tree)
    if cfg["train"]["output_dir"] is None:
        cfg["train"]["output_dir"] = default_output_dir(path)
    validate_config(cfg, require, source=f"config '{path}'" if path else None)
    return cfg


def dump_config(cfg: Dict[str, Any]) -> str:
    """YAML text of a config (stable key order), e.g. for provenance."""
    return yaml.safe_dump(cfg, sort_keys=True, default_flow_style=None)
