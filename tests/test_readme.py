"""The README's examples name only what exists: every `cameras` command and option, every Python name.

The README is what users copy from; a renamed option or function must fail here rather than
in their shell. Commands are read from fenced blocks (continuation lines included) and inline
code; Python blocks are parsed and every ``cameras.…`` name, import and keyword of a call on
one is resolved against the installed package.
"""

import ast
import importlib
import inspect
import re
from pathlib import Path

import click
import pytest

import cameras
from cameras.cli import main as cli

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
# `cameras SUB …` at the start of a line (or after `$ `), or `python|torchrun … -m cameras SUB …`
COMMAND = re.compile(r"(?:^\s*(?:\$\s+)?|\s-m\s+)cameras\s+([a-z][a-z0-9-]*)((?:\s+[a-z][a-z0-9-]*)?)(.*)")
SETTING = re.compile(r"--set\s+([a-z_][a-z0-9_.-]*)=")
OPTION = re.compile(r"(?<![\w.-])(--[a-z][a-z0-9-]*)")


def _blocks(text: str, kind: str | None = None) -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in FENCE.findall(text) if kind is None or lang == kind]


def command_lines(text: str | None = None) -> list[str]:
    """Each `cameras …` invocation of the README as one line: fenced blocks (backslash and indented
    continuation lines joined, `#` comments dropped) and inline code."""
    text = README.read_text() if text is None else text
    lines = []
    for lang, body in _blocks(text):
        if lang == "python":
            continue
        current = None
        for raw in body.splitlines():
            line = re.sub(r"\s#.*$", "", raw) if not raw.lstrip().startswith("#") else ""
            if current is not None and (raw[:1].isspace() or current.endswith("\\")):
                current = current.rstrip("\\") + " " + line.strip()
                continue
            if current is not None:
                lines.append(current)
            current = line if COMMAND.search(line) else None
        if current is not None:
            lines.append(current)
    lines += [span for span in re.findall(r"`([^`\n]+)`", FENCE.sub("", text)) if COMMAND.search(span)]
    return lines


def resolve(line: str) -> tuple[click.Command, str, str]:
    """The click command a README line runs, its name and the text of its arguments."""
    m = COMMAND.search(line)
    sub, second, rest = m.group(1), m.group(2).strip(), m.group(3)
    cmd = cli.commands.get(sub)
    assert cmd is not None, f"README runs `cameras {sub}`, which is not a command: {line!r}"
    name = sub
    if isinstance(cmd, click.Group):
        assert second in cmd.commands, f"README runs `cameras {sub} {second}`, not a command: {line!r}"
        cmd, name = cmd.commands[second], f"{sub} {second}"
    else:
        rest = f"{second} {rest}"
    return cmd, name, rest


def options_of(cmd: click.Command) -> set[str]:
    return {o for p in cmd.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts)} | {"--help"}


def test_the_readme_has_commands_to_check():
    names = {resolve(line)[1] for line in command_lines()}
    # the commands a reader meets first: a parser that finds none of them checks nothing
    assert {"explain", "evaluate", "reproduce", "compare", "app", "synthetic", "experiment n-sensitivity",
            "bench"} <= names, names


@pytest.mark.parametrize("line", command_lines())
def test_every_readme_command_and_option_exists(line):
    cmd, name, rest = resolve(line)
    unknown = sorted(set(OPTION.findall(rest)) - options_of(cmd))
    assert not unknown, f"`cameras {name}` has no option {', '.join(unknown)} (README: {line.strip()!r})"


def set_problems(cmd: click.Command, rest: str) -> list[str]:
    """`--set` keys of one command line that the command would refuse: METHOD.KEY for a command whose
    --set is per method (its metavar says so); for explain a KEY of the line's --method when it names one, or
    METHOD.KEY with that method (cameras by default)."""
    from cameras.methods import available_methods, method_option_names

    opt = next((p for p in cmd.params if "--set" in getattr(p, "opts", ())), None)
    keys = SETTING.findall(rest)
    if opt is None:
        return [f"--set {k}= (the command has no --set)" for k in keys]
    per_method = "METHOD" in (opt.metavar or "")
    named = re.search(r"--method\s+([a-z0-9-]+)", rest)
    known = {k for m in available_methods() for k in method_option_names(m)}
    bad = []
    for key in keys:
        method, _, option = key.rpartition(".")
        if per_method:
            ok = bool(method) and method in available_methods() and option in method_option_names(method)
        elif method:  # explain takes METHOD.KEY for the method it runs (cameras unless --method names another)
            ok = method == (named.group(1) if named else "cameras") and option in method_option_names(method)
        else:
            ok = option in (method_option_names(named.group(1)) if named else known)
        if not ok:
            bad.append(f"--set {key}=")
    return bad


@pytest.mark.parametrize("line", [ln for ln in command_lines() if "--set" in ln])
def test_every_readme_set_fits_its_command(line):
    cmd, name, rest = resolve(line)
    assert set_problems(cmd, rest) == [], f"`cameras {name}` would refuse these (README: {line.strip()!r})"


def test_the_set_checker_knows_each_commands_form():
    cases = {"cameras evaluate --set cameras.scales=1,2 --set precision=bf16": ["--set precision="],
             "cameras explain a.png --set cameras.scales=1,2 --set rise.n_masks=6": ["--set rise.n_masks="],
             "cameras explain a.png --method rise --set n_masks=6 --set area=0.1": ["--set area="],
             "cameras explain a.png --method rise --set rise.n_masks=6": [],
             "cameras compare a.png --set rise.n_masks=6": []}
    for line, want in cases.items():
        cmd, _, rest = resolve(line)
        assert set_problems(cmd, rest) == want, line


def test_the_command_reader_finds_continuations_and_stale_options():
    """The reader itself: continued lines count, and an option a command lacks is caught."""
    lines = command_lines(
        "x `cameras explain a.png --no-such-flag` y\n```sh\ncameras evaluate --data d \\\n    --format voc --out o\n"
        "```\n```\ncameras experiment interpolation IMAGE\n        [--limit N]\n```\n")
    assert len(lines) == 3
    cmd, name, rest = resolve(lines[1])
    assert name == "experiment interpolation" and "--limit" in OPTION.findall(rest)
    cmd, name, rest = resolve(lines[2])
    assert name == "explain" and set(OPTION.findall(rest)) - options_of(cmd) == {"--no-such-flag"}
    cmd, name, rest = resolve(lines[0])
    assert name == "evaluate" and set(OPTION.findall(rest)) == {"--data", "--format", "--out"}


def _python_blocks() -> list[str]:
    return [body for _, body in _blocks(README.read_text(), "python")]


def _dotted(node: ast.AST) -> str | None:
    """`cameras.a.b` for an attribute chain rooted at the name `cameras`, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "cameras" and parts:
        return ".".join(["cameras", *reversed(parts)])
    return None


def _resolve_name(dotted: str):
    obj = cameras
    for part in dotted.split(".")[1:]:
        if not hasattr(obj, part):  # a submodule not imported by the package's __init__
            obj = importlib.import_module(f"{obj.__name__}.{part}") if inspect.ismodule(obj) else None
            assert obj is not None, f"README names {dotted}, which does not exist"
        else:
            obj = getattr(obj, part)
    return obj


def problems_in(source: str) -> list[str]:
    """Names the Python source takes from `cameras` that do not exist, and keywords its calls on them do not take."""
    found = []
    tree = ast.parse(source)
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}  # checked as the longer chain
    imported = {a.asname or a.name: f"{n.module}.{a.name}" for n in ast.walk(tree)  # from cameras… import X
                if isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "cameras" for a in n.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "cameras":
            mod = importlib.import_module(node.module)
            found += [f"from {node.module} import {a.name}" for a in node.names if not hasattr(mod, a.name)]
        elif isinstance(node, ast.Attribute) and id(node) not in inner:
            dotted = _dotted(node)
            if dotted:
                try:
                    _resolve_name(dotted)
                except (AssertionError, ImportError):
                    found.append(dotted)
        called = None if not isinstance(node, ast.Call) else _dotted(node.func) or (
            imported.get(node.func.id) if isinstance(node.func, ast.Name) else None)
        if called:
            try:
                fn = _resolve_name(called)
                sig = inspect.signature(fn)
            except (AssertionError, ImportError, TypeError, ValueError):
                continue  # a missing name is reported above
            takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
            found += [f"{called}({k.arg}=…)" for k in node.keywords
                      if k.arg is not None and not takes_any and k.arg not in sig.parameters]
    return found


def test_the_readme_has_python_to_check():
    blocks = _python_blocks()
    assert len(blocks) >= 6 and sum("cameras.CAMERAS(" in b for b in blocks) >= 3


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_every_readme_python_name_exists(index):
    source = _python_blocks()[index]
    assert problems_in(source) == [], source


def test_the_python_checker_catches_stale_names():
    assert problems_in("import cameras\ncameras.CAMERAS(m, scales=[224], layer='x')") == []
    assert problems_in("import cameras\ncameras.CAMERAS(m, no_such_option=1)") == ["cameras.CAMERAS(no_such_option=…)"]
    assert "cameras.NoSuchMethod" in problems_in("import cameras\ncameras.NoSuchMethod(m)")
    assert problems_in("from cameras.attacks import pgd\npgd(m, x, eps=0.1, no_such=1)") == \
        ["cameras.attacks.pgd(no_such=…)"]
    stale = problems_in("from cameras.attacks import pgd, no_such_attack")
    assert stale == ["from cameras.attacks import no_such_attack"]


def test_every_readme_method_setting_exists():
    """`--set KEY=VALUE` and `--set METHOD.KEY=VALUE` name an option some method (or that method) takes."""
    from cameras.methods import available_methods, method_option_names

    keys = set(SETTING.findall(README.read_text()))
    assert {"precision", "cameras.scales", "rise.n_masks"} <= keys, keys  # the reader finds them
    known = {k for m in available_methods() for k in method_option_names(m)}
    unknown = []
    for key in sorted(keys):
        method, _, option = key.rpartition(".")
        if option not in (method_option_names(method) if method else known):
            unknown.append(key)
    assert not unknown, f"README sets method options no method takes: {unknown}"
