"""YAML parsed with the line of every key and list item, and problems located by key path and line: what
the config file, the health model and the playbook share to report every mistake where it is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from healthsync.config.envrefs import KeyPath

__all__ = ["LineIndex", "Problem", "dotted", "nearest_line", "parse_yaml", "render_problems", "yaml_line_index"]

LineIndex = dict[KeyPath, int]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration: where (dotted key path, line) and what to do about it."""

    path: str
    line: int | None
    message: str
    file: str | None = None  # set when the problem is in another file (a health model, a playbook)

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.line:
            where.append(f"line {self.line}")
        location = " ".join(where)
        if self.path:
            return f"{self.path} ({location}): {self.message}" if location else f"{self.path}: {self.message}"
        return f"{location}: {self.message}" if location else self.message


def render_problems(problems: list[Problem], source: Path | None) -> str:
    """The multi-line message of ConfigError: a header and one problem per line."""
    name = str(source) if source else "configuration"
    count = len(problems)
    header = f"{name}: {count} problem{'s' if count != 1 else ''} in the configuration"
    return "\n".join([header, *(f"  - {p}" for p in problems)])


def parse_yaml(text: str) -> tuple[Any, LineIndex, list[Problem]]:
    """(document, key path -> 1-based line, problems). Syntax errors come back as a problem with their line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, []
        lines, duplicates = yaml_line_index(node)
        return loader.construct_document(node), lines, duplicates
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return None, {}, [Problem("", mark.line + 1 if mark else None, _syntax_message(exc))]
    except yaml.YAMLError as exc:
        return None, {}, [Problem("", None, f"YAML error: {exc}")]
    finally:
        loader.dispose()


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or "invalid YAML"
    mark = exc.problem_mark
    column = f", column {mark.column + 1}" if mark else ""
    message = f"YAML syntax error{column}: {problem}"
    if exc.context:
        message += f" ({exc.context})"
    if "'\\t'" in problem or "tab" in problem:
        message += "; indent with spaces, not tabs"
    elif "mapping values are not allowed" in problem:
        message += "; a value containing ': ' must be quoted, or a key is indented wrongly"
    return message


def yaml_line_index(node: yaml.Node, path: KeyPath = ()) -> tuple[LineIndex, list[Problem]]:
    """Walk PyYAML's composed node tree: the line of every key and list item, plus duplicate keys."""
    lines: LineIndex = {}
    problems: list[Problem] = []
    stack: list[tuple[yaml.Node, KeyPath]] = [(node, path)]
    while stack:
        current, at = stack.pop()
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key_path = (*at, key_node.value)
                line = key_node.start_mark.line + 1
                if key_path in lines:
                    problems.append(Problem(dotted(key_path), line, f"duplicate key '{key_node.value}' (first at line "
                                            f"{lines[key_path]}); YAML keeps only the last one, so remove one of them"))
                else:
                    lines[key_path] = line
                stack.append((value_node, key_path))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                lines[(*at, index)] = item.start_mark.line + 1
                stack.append((item, (*at, index)))
    return lines, problems


def nearest_line(lines: LineIndex, path: KeyPath) -> int | None:
    """The line of `path`, or of its nearest ancestor present in the file (a missing key points at its parent)."""
    for end in range(len(path), 0, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None


def dotted(path: KeyPath) -> str:
    return ".".join(str(part) for part in path)
