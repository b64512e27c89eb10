"""The ``parameters`` cell of a notebook: read it (without executing anything) and check values against it.

A notebook of this project has one code cell tagged ``parameters`` holding JSON-typed literal assignments,
one per line, comments allowed::

    epochs = 3          # training epochs
    lr = 0.01
    input_size = "256x192"
    spec = None         # an architecture spec as a JSON string (None: the default spec)
    out_dir = ""        # filled in by run_notebook with the run directory

`read_parameters` parses that cell with `ast`; `check_parameters` refuses unknown names and wrong types
(papermill itself only warns on unknown names). Type rules: the default's type is the parameter's type; an
int is accepted for a float (and converted); a ``None`` default accepts any JSON value; a ``str`` value for
a non-str parameter is JSON-parsed (so ``-p epochs 5`` from a command line works, see `coerce_cli_value`).
bool is never an int here, and an int is never a bool.
"""

from __future__ import annotations

import ast
import difflib
import io
import json
import math
import os
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posenas_core.errors import ConfigError

__all__ = [
    "PARAMETERS_TAG", "Param", "type_name", "read_notebook", "parse_parameters_source", "read_parameters",
    "coerce_cli_value", "check_parameters",
]

PARAMETERS_TAG = "parameters"

# JSON-typed literals only: the parameter values travel through JSON (run.json, sweep files, CLI).
_TYPE_NAMES = {int: "int", float: "float", str: "str", bool: "bool", type(None): "None", list: "list", dict: "dict"}


@dataclass(frozen=True)
class Param:
    """One assignment of the parameters cell: ``name = default  # comment``."""

    name: str
    default: Any
    type: str  # "int" | "float" | "str" | "bool" | "None" | "list" | "dict"
    comment: str = ""
    line: int = 0  # 1-based line in the parameters cell


def type_name(value: Any) -> str:
    """The JSON type name used in messages: int, float, str, bool, None, list, dict (else the class name)."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _is_json_value(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, str)):
        return True
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, list):
        return all(_is_json_value(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _is_json_value(x) for k, x in v.items())
    return False


def read_notebook(nb_path: str | os.PathLike):
    """The notebook as an nbformat v4 node; ConfigError when it is missing or not a readable .ipynb."""
    import nbformat

    path = Path(nb_path)
    if not path.is_file():
        raise ConfigError(f"notebook not found: {nb_path}")
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as e:  # nbformat raises several types for a corrupt file
        raise ConfigError(f"notebook {nb_path} is not a readable .ipynb file: {e}") from None


def _parameters_source(nb, nb_path) -> str:
    for cell in nb.cells:
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            src = cell.get("source", "")
            return "".join(src) if isinstance(src, list) else src
    raise ConfigError(
        f"notebook {nb_path} has no code cell tagged '{PARAMETERS_TAG}' "
        "(add the tag to the cell of parameter assignments)"
    )


def _comments_by_line(source: str) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def parse_parameters_source(source: str, where: str = "parameters cell") -> dict[str, Param]:
    """Parse the text of a parameters cell into ``{name: Param}`` (declaration order).

    Only ``name = <JSON literal>`` (or ``name: T = <literal>``) statements are allowed; anything
    else raises ConfigError naming the line.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ConfigError(f"{where}: line {e.lineno}: syntax error: {e.msg}") from None
    lines = source.splitlines()
    comments = _comments_by_line(source)
    params: dict[str, Param] = {}
    for node in tree.body:
        text = lines[node.lineno - 1].strip() if node.lineno - 1 < len(lines) else ""
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value_node = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value_node = node.target.id, node.value
        else:
            raise ConfigError(
                f"{where}: line {node.lineno}: `{text}` is not a parameter assignment; "
                "only `name = <literal>` lines (int, float, str, bool, None, list, dict) are allowed"
            )
        try:
            value = ast.literal_eval(value_node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ConfigError(
                f"{where}: line {node.lineno}: `{text}` is not a literal; parameters must be "
                "JSON-typed literals (int, float, str, bool, None, list, dict), computed values belong "
                "in a later cell"
            ) from None
        if isinstance(value, tuple):
            value = list(value)
        if not _is_json_value(value):
            raise ConfigError(
                f"{where}: line {node.lineno}: `{text}`: a {type_name(value)} is not JSON-typed; "
                "allowed: int, float, str, bool, None, list, dict (str keys)"
            )
        if name in params:
            raise ConfigError(
                f"{where}: line {node.lineno}: parameter '{name}' is assigned twice "
                f"(first on line {params[name].line})"
            )
        # the comment on the assignment's line(s), else the comment line(s) right above it
        end = getattr(node, "end_lineno", node.lineno) or node.lineno
        comment = next((comments[i] for i in range(node.lineno, end + 1) if i in comments), "")
        if not comment:
            above, i = [], node.lineno - 1
            while i >= 1 and i in comments and lines[i - 1].lstrip().startswith("#"):
                above.insert(0, comments[i])
                i -= 1
            comment = " ".join(above)
        params[name] = Param(name=name, default=value, type=type_name(value), comment=comment, line=node.lineno)
    return params


def read_parameters(nb_path: str | os.PathLike) -> dict[str, Param]:
    """The notebook's parameters ``{name: Param}`` from its ``parameters``-tagged cell (not executed)."""
    nb = read_notebook(nb_path)
    source = _parameters_source(nb, nb_path)
    return parse_parameters_source(source, where=f"parameters cell of {nb_path}")


def coerce_cli_value(text: str, param: Param) -> Any:
    """A command-line string -> a value for `param`: JSON-parse it; if that fails keep the raw
    string when the parameter is a str (or has a None default). The result is not type-checked
    here (`check_parameters` does that and names the parameter).

    >>> coerce_cli_value("5", Param("epochs", 3, "int"))
    5
    >>> coerce_cli_value("256x192", Param("input_size", "128x96", "str"))
    '256x192'
    """
    if param.type == "str":
        # a str parameter takes the text as is, unless it is a JSON string literal ("\"a b\"")
        if len(text) >= 2 and text[0] == text[-1] == '"':
            try:
                v = json.loads(text)
                if isinstance(v, str):
                    return v
            except json.JSONDecodeError:
                pass
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _short(v: Any, n: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def _check_value(p: Param, value: Any, nb_path) -> Any:
    """Check one value against its parameter; return the (coerced) value or raise ConfigError."""
    original = value
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, str) and p.type not in ("str", "None"):
        value = coerce_cli_value(value, p)
    t = p.type
    if t == "None":
        ok = _is_json_value(value)
    elif t == "bool":
        ok = isinstance(value, bool)
    elif t == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
            ok = math.isfinite(value)
    elif t == "str":
        ok = isinstance(value, str)
    elif t == "list":
        ok = isinstance(value, list) and _is_json_value(value)
    elif t == "dict":
        ok = isinstance(value, dict) and _is_json_value(value)
    else:  # pragma: no cover - read_parameters only produces the types above
        ok = False
    if not ok:
        want = "any JSON value" if t == "None" else t
        raise ConfigError(
            f"parameter '{p.name}' must be {want} (default {_short(p.default)}), "
            f"got {type_name(original)} {_short(original)} for {nb_path}"
        )
    return value


def check_parameters(nb_path: str | os.PathLike, params: dict, *, known: dict[str, Param] | None = None) -> dict:
    """Validate `params` against the notebook's parameters cell; return the checked (coerced) dict.

    Unknown names and wrong types raise ConfigError before anything executes. `known` lets a caller
    pass an already read parameter table (a batch reads each notebook once).
    """
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ConfigError(f"parameters for {nb_path} must be a mapping of name -> value, got {type_name(params)}")
    known = read_parameters(nb_path) if known is None else known
    out = {}
    for name, value in params.items():
        if name not in known:
            close = difflib.get_close_matches(str(name), list(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"unknown parameter '{name}' for {nb_path}{hint}; known: {', '.join(known) or '(none)'}"
            )
        out[name] = _check_value(known[name], value, nb_path)
    return out
