"""The package's shape: short functions, and module imports without a cycle.

Both rules are checked with `ast` over every .py file of gzevo_jax/, so they
hold for code that no other test runs:
  * every function (nested ones and methods too) is at most
    MAX_FUNCTION_LINES long, from its `def` line to its last line;
  * no module imports, directly or through others, a module that imports it
    back. Imports inside functions and under `if TYPE_CHECKING:` count too:
    a cycle hidden in a function body is still a cycle.
"""

from __future__ import annotations

import ast
import os
from typing import Iterator, Mapping, Optional

from conftest import REPO_ROOT

PACKAGE = 'gzevo_jax'
MAX_FUNCTION_LINES = 60

Graph = Mapping[str, set[str]]


def _package_files(root: str = REPO_ROOT) -> dict[str, str]:
  """Module name -> path of every .py file of the package."""
  modules = {}
  for folder, _, files in os.walk(os.path.join(root, PACKAGE)):
    for name in sorted(files):
      if not name.endswith('.py'):
        continue
      path = os.path.join(folder, name)
      parts = os.path.relpath(path, root)[:-len('.py')].split(os.sep)
      if parts[-1] == '__init__':
        parts = parts[:-1]
      modules['.'.join(parts)] = path
  return modules


def _parse(path: str) -> ast.Module:
  with open(path, encoding='utf-8') as f:
    return ast.parse(f.read(), filename=path)


def long_functions(tree: ast.AST,
                   limit: int = MAX_FUNCTION_LINES) -> list[tuple[int, str, int]]:
  """(line, name, length) of each function in `tree` longer than `limit`.

  The length runs from the `def` line to the last line of the body;
  decorators are not counted.
  """
  found = []
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      length = node.end_lineno - node.lineno + 1
      if length > limit:
        found.append((node.lineno, node.name, length))
  return sorted(found)


def _imported_names(node: ast.AST, module: str,
                    is_package: bool) -> Iterator[str]:
  """Absolute dotted names an import statement may load.

  For `from X import y` both `X.y` (y may be a submodule) and `X` are given;
  the caller keeps whichever is a module of the package.
  """
  if isinstance(node, ast.Import):
    for alias in node.names:
      yield alias.name
    return
  if node.level:
    package = module if is_package else module.rpartition('.')[0]
    for _ in range(node.level - 1):
      package = package.rpartition('.')[0]
    base = '.'.join(p for p in (package, node.module) if p)
  else:
    base = node.module or ''
  for alias in node.names:
    yield f'{base}.{alias.name}'
  yield base


def import_graph(files: Mapping[str, str]) -> dict[str, set[str]]:
  """Module -> the package's modules it imports (anywhere in its code)."""
  graph = {}
  for module, path in files.items():
    is_package = path.endswith('__init__.py')
    edges = set()
    for node in ast.walk(_parse(path)):
      if not isinstance(node, (ast.Import, ast.ImportFrom)):
        continue
      names = list(_imported_names(node, module, is_package))
      if isinstance(node, ast.ImportFrom):
        # `from X import y`: the submodule X.y where there is one, else X.
        submodules = [n for n in names[:-1] if n in files]
        names = submodules or names[-1:]
      edges.update(n for n in names if n in files and n != module)
    graph[module] = edges
  return graph


def find_cycle(graph: Graph) -> Optional[list[str]]:
  """A cycle of `graph` as [a, b, ..., a], or None if it has none."""
  done, path, on_path = set(), [], set()

  def visit(node: str) -> Optional[list[str]]:
    path.append(node)
    on_path.add(node)
    for target in sorted(graph.get(node, ())):
      if target in on_path:
        return path[path.index(target):] + [target]
      if target not in done:
        cycle = visit(target)
        if cycle:
          return cycle
    on_path.discard(path.pop())
    done.add(node)
    return None

  for start in sorted(graph):
    if start not in done:
      cycle = visit(start)
      if cycle:
        return cycle
  return None


def test_no_function_is_longer_than_the_limit():
  offenders = []
  for path in _package_files().values():
    for line, name, length in long_functions(_parse(path)):
      offenders.append(f'{os.path.relpath(path, REPO_ROOT)}:{line} {name} '
                       f'{length} lines')
  assert not offenders, (f'functions over {MAX_FUNCTION_LINES} lines:\n' +
                         '\n'.join(offenders))


def test_module_imports_have_no_cycle():
  cycle = find_cycle(import_graph(_package_files()))
  assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_long_functions_finds_long_and_nested_functions():
  body = [f'x{i} = {i}' for i in range(59)]
  lines = (['@decorator', 'def fits():'] + ['  ' + b for b in body] +
           ['', 'def too_long():', '  def inner():'] +
           ['    ' + b for b in body] + ['  return inner'])
  source = '\n'.join(lines) + '\n'
  # fits: def + 59 lines = 60; inner: def + 59 = 60; too_long: 62.
  assert long_functions(ast.parse(source)) == [(63, 'too_long', 62)]
  assert long_functions(ast.parse(source), limit=59) == [
      (2, 'fits', 60), (63, 'too_long', 62), (64, 'inner', 60)]


def test_find_cycle_on_hand_made_graphs():
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set()}) is None
  assert find_cycle({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}) is None
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [
      'a', 'b', 'c', 'a']
  assert find_cycle({'x': {'y'}, 'y': {'z'}, 'z': {'y'}}) == ['y', 'z', 'y']


def test_import_graph_resolves_every_import_form(tmp_path):
  files = {
      'gzevo_jax/__init__.py': '',
      'gzevo_jax/a.py': 'from gzevo_jax import b\n',
      'gzevo_jax/b.py': 'def f():\n  from gzevo_jax.sub import c\n',
      'gzevo_jax/sub/__init__.py': 'from . import c\n',
      'gzevo_jax/sub/c.py': ('from ..a import thing\n'
                             'import gzevo_jax.b\n'
                             'from gzevo_jax.sub.c import name\n'),
  }
  for relative, text in files.items():
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
  graph = import_graph(_package_files(str(tmp_path)))
  assert graph == {
      'gzevo_jax': set(),
      'gzevo_jax.a': {'gzevo_jax.b'},
      'gzevo_jax.b': {'gzevo_jax.sub.c'},
      'gzevo_jax.sub': {'gzevo_jax.sub.c'},
      'gzevo_jax.sub.c': {'gzevo_jax.a', 'gzevo_jax.b'},
  }
  assert find_cycle(graph) == ['gzevo_jax.a', 'gzevo_jax.b', 'gzevo_jax.sub.c',
                               'gzevo_jax.a']
