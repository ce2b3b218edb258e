"""Config validation against the schema of :mod:`mlreco_spice.defaults`.

Every problem is collected (all typos, not the first), each with its key path, a
"did you mean" suggestion where one is close, and the successor of a key renamed
with a change of unit (:mod:`mlreco_spice.config_renames`).
"""
from __future__ import annotations

import difflib
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .config_renames import renamed_key, renamed_message
from .defaults import DEFAULTS, OPEN_MAPPINGS, Spec, stage_schema
from .errors import ConfigError

__all__ = ["schema_problems", "where", "raise_all"]


def _type_names(types: Tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def _check_value(value: Any, spec: Any, where: str) -> None:
    if isinstance(spec, Spec):
        types = spec.types
    elif spec is None:
        return
    else:
        types = (type(spec),)
    if object in types:
        return
    ok = any(isinstance(value, t) and not (isinstance(value, bool) and t in (int, float))
             for t in types)
    if not ok and float in types and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        extra = f" ({spec.doc})" if isinstance(spec, Spec) and spec.doc else ""
        raise ConfigError(f"'{where}' must be {_type_names(types)}, "
                          f"got {type(value).__name__} {value!r}{extra}")
    if isinstance(spec, Spec) and spec.choices and value not in spec.choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in spec.choices], n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"'{where}' is {value!r}, not one of "
                          f"{', '.join(map(str, spec.choices))}.{hint}")


def _validate(node: Any, schema: Dict[str, Any], prefix: Tuple[str, ...],
              errors: List[str]) -> None:
    """Append one message per problem under ``node`` to ``errors`` (all typos, not the first)."""
    where = ".".join(prefix) or "<top level>"
    if not isinstance(node, dict):
        errors.append(f"'{where}' must be a mapping, got {type(node).__name__} {node!r}")
        return
    for key, value in node.items():
        keys = prefix + (str(key),)
        path = ".".join(keys)
        if key not in schema and renamed_key(prefix, key):
            if value is not None:  # null (off) has no unit: still accepted
                errors.append(renamed_message(prefix, key))
            continue
        if key not in schema:
            valid = sorted(schema)
            close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
            hint = f" Did you mean '{'.'.join(prefix + (close[0],))}'?" if close else ""
            errors.append(f"unknown key '{key}' at '{path}'.{hint} "
                          f"Valid keys under '{where}': {', '.join(valid)}")
            continue
        sub = schema[key]
        if keys in OPEN_MAPPINGS:
            if not isinstance(value, dict):
                errors.append(f"'{path}' must be a mapping, got {type(value).__name__}")
            elif OPEN_MAPPINGS[keys] == "stage":
                for stage, block in value.items():
                    _validate(block if block is not None else {}, stage_schema(stage),
                              keys + (str(stage),), errors)
        elif isinstance(sub, dict) and sub:
            _validate(value if value is not None else {}, sub, keys, errors)
        elif isinstance(sub, dict):  # empty dict: free-form mapping
            if value is not None and not isinstance(value, dict):
                errors.append(f"'{path}' must be a mapping, got {type(value).__name__}")
        else:
            try:
                _check_value(value, sub, path)
            except ConfigError as err:
                errors.append(str(err))


def where(source: Optional[str], message: str) -> str:
    """``message`` prefixed with where the config came from (when known)."""
    return f"{source}: {message}" if source else message


def schema_problems(cfg: Dict[str, Any], source: Optional[str] = None) -> List[str]:
    """One message per key or type of ``cfg`` the schema refuses (all of them), each
    prefixed with ``source``."""
    errors: List[str] = []
    _validate(cfg, DEFAULTS, (), errors)
    return [where(source, e) for e in errors]


def raise_all(errors: Sequence[str]) -> None:
    """One ConfigError listing every problem (one line each)."""
    if len(errors) == 1:
        raise ConfigError(errors[0])
    if errors:
        raise ConfigError(f"{len(errors)} config problems:\n  " + "\n  ".join(errors))
