"""Galaxy Zoo decision trees: questions, answers, label columns and dependencies.

A `Schema` is the ordered list of questions a model predicts. Each answer is one
label column, named `{question}_{answer}` as in galaxy-datasets / Zoobot
catalogs, and the Dirichlet head emits one concentration per column. The
built-in `GZ_EVO_V0_1` merges the decision trees of the six GZ-Evo campaigns
(65 questions, 206 answers); most answers of any one galaxy are unknown (zero
votes), which the Dirichlet-Multinomial loss handles with no masking.

This module is pure Python + numpy: accelerator hosts import it without
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from gzevo_jax import errors

_PACKAGE_SCHEMA_DIR = os.path.join(os.path.dirname(__file__), 'schemas')


class SchemaError(errors.UserError):
  """A decision tree that cannot be used: duplicate columns, bad dependencies."""


@dataclasses.dataclass(frozen=True)
class Question:
  """One question of a decision tree.

  Attributes:
    name: e.g. 'smooth-or-featured-dr5' (campaign suffix included).
    answers: answer names, e.g. ('smooth', 'featured-or-disk', 'artifact').
    asked_if: the label column `{question}_{answer}` a volunteer must have
      chosen for this question to be asked, or None for a root question.
    campaign: the campaign whose tree this question belongs to, if known.
  """
  name: str
  answers: tuple[str, ...]
  asked_if: Optional[str] = None
  campaign: Optional[str] = None

  @property
  def columns(self) -> tuple[str, ...]:
    return tuple(f'{self.name}_{a}' for a in self.answers)


@dataclasses.dataclass(frozen=True)
class Schema:
  """An ordered set of questions; label columns are their answers in order.

  Construct with `Schema(name, questions)`; validation runs on construction.
  """
  name: str
  questions: tuple[Question, ...]

  def __post_init__(self):
    object.__setattr__(self, 'questions', tuple(self.questions))
    _validate(self)

  # ---- Derived, cached views (the dataclass is frozen, so caching is safe).

  @functools.cached_property
  def label_cols(self) -> tuple[str, ...]:
    """Ordered label columns `{question}_{answer}`: one per model output."""
    return tuple(c for q in self.questions for c in q.columns)

  @functools.cached_property
  def question_names(self) -> tuple[str, ...]:
    return tuple(q.name for q in self.questions)

  @functools.cached_property
  def answer_question_index(self) -> np.ndarray:
    """int32 [num_answers]: the question index of each label column."""
    return np.array([i for i, q in enumerate(self.questions)
                     for _ in q.answers], dtype=np.int32)

  @functools.cached_property
  def question_slices(self) -> tuple[slice, ...]:
    """The contiguous slice of label columns belonging to each question."""
    slices, start = [], 0
    for q in self.questions:
      slices.append(slice(start, start + len(q.answers)))
      start += len(q.answers)
    return tuple(slices)

  @functools.cached_property
  def campaigns(self) -> tuple[str, ...]:
    """Campaign names in order of first appearance (empty if not tagged)."""
    seen: dict[str, None] = {}
    for q in self.questions:
      if q.campaign is not None:
        seen.setdefault(q.campaign, None)
    return tuple(seen)

  @property
  def num_questions(self) -> int:
    return len(self.questions)

  @property
  def num_answers(self) -> int:
    return len(self.label_cols)

  def column_index(self, column: str) -> int:
    """Position of a label column; KeyError naming close matches otherwise."""
    try:
      return self._column_positions[column]
    except KeyError:
      raise KeyError(f'{column!r} is not a label column of schema '
                     f'{self.name!r}') from None

  @functools.cached_property
  def _column_positions(self) -> dict[str, int]:
    return {c: i for i, c in enumerate(self.label_cols)}

  def question(self, name: str) -> Question:
    for q in self.questions:
      if q.name == name:
        return q
    raise KeyError(f'{name!r} is not a question of schema {self.name!r}; '
                   f'questions: {", ".join(self.question_names)}')

  def total_votes_col(self, question: str) -> str:
    """Catalog column holding a question's total votes."""
    return f'{self.question(question).name}_total-votes'

  def fraction_cols(self) -> tuple[str, ...]:
    """Catalog columns holding vote fractions, aligned with `label_cols`."""
    return tuple(f'{c}_fraction' for c in self.label_cols)

  def campaign_subset(self, campaigns: str | Iterable[str]) -> 'Schema':
    """The questions of one or more campaigns, in this schema's order."""
    wanted = (campaigns,) if isinstance(campaigns, str) else tuple(campaigns)
    unknown = [c for c in wanted if c not in self.campaigns]
    if unknown:
      raise KeyError(f'unknown campaign(s) {unknown} for schema {self.name!r};'
                     f' campaigns: {", ".join(self.campaigns)}')
    return Schema(name=f'{self.name}[{"+".join(wanted)}]',
                  questions=tuple(q for q in self.questions
                                  if q.campaign in wanted))

  def campaign_answer_mask(self, campaign: str) -> np.ndarray:
    """bool [num_answers]: which label columns a campaign asked."""
    if campaign not in self.campaigns:
      raise KeyError(f'unknown campaign {campaign!r}; campaigns: '
                     f'{", ".join(self.campaigns)}')
    return np.array([q.campaign == campaign for q in self.questions
                     for _ in q.answers])

  # ---- Serialisation, in the format of the shipped GZ-Evo schema file.

  @classmethod
  def from_dict(cls, data: Mapping[str, Any], source: str = '<dict>') -> 'Schema':
    """Builds a schema from the JSON layout of `schemas/gz_evo_v0_1.json`.

    Accepts either `{"name", "campaigns": [{"campaign", "questions": [...]}]}`
    or a flat `{"name", "questions": [...]}`; each question is
    `{"question": str, "answers": [str, ...], "asked_if": str | null}`.
    """
    def fail(msg: str) -> SchemaError:
      return SchemaError(f'{source}: {msg}')

    if not isinstance(data, Mapping):
      raise fail('expected a JSON object at the top level')
    name = data.get('name', os.path.splitext(os.path.basename(source))[0])
    groups: list[tuple[Optional[str], Any]] = []
    if 'campaigns' in data:
      for i, campaign in enumerate(data['campaigns']):
        if 'campaign' not in campaign or 'questions' not in campaign:
          raise fail(f'campaigns[{i}] needs "campaign" and "questions" fields')
        groups.append((campaign['campaign'], campaign['questions']))
    elif 'questions' in data:
      groups.append((None, data['questions']))
    else:
      raise fail('expected a "campaigns" or "questions" field')

    questions = []
    for campaign, qs in groups:
      for j, q in enumerate(qs):
        where = f'question {j}' + (f' of campaign {campaign!r}'
                                   if campaign else '')
        if not isinstance(q, Mapping) or 'question' not in q or 'answers' not in q:
          raise fail(f'{where} needs "question" and "answers" fields')
        answers = q['answers']
        if (not isinstance(answers, (list, tuple)) or not answers or
            not all(isinstance(a, str) and a for a in answers)):
          raise fail(f'{where} ({q["question"]!r}) needs a non-empty list of '
                     'answer names')
        questions.append(Question(name=str(q['question']),
                                  answers=tuple(answers),
                                  asked_if=q.get('asked_if'),
                                  campaign=campaign))
    try:
      return cls(name=str(name), questions=tuple(questions))
    except SchemaError as e:
      raise fail(str(e)) from None

  @classmethod
  def from_json(cls, path: str) -> 'Schema':
    """Loads a user's decision tree from a JSON file (see `from_dict`)."""
    try:
      with open(path) as f:
        data = json.load(f)
    except FileNotFoundError:
      raise FileNotFoundError(f'schema file not found: {path}') from None
    except json.JSONDecodeError as e:
      raise SchemaError(f'{path}: not valid JSON ({e})') from None
    return cls.from_dict(data, source=path)

  def to_dict(self) -> dict[str, Any]:
    """Inverse of `from_dict` (campaign grouping kept when present)."""
    def q_dict(q: Question) -> dict[str, Any]:
      return {'question': q.name, 'answers': list(q.answers),
              'asked_if': q.asked_if}
    if self.campaigns and all(q.campaign for q in self.questions):
      return {'name': self.name, 'campaigns': [
          {'campaign': c,
           'questions': [q_dict(q) for q in self.questions if q.campaign == c]}
          for c in self.campaigns]}
    return {'name': self.name, 'questions': [q_dict(q) for q in self.questions]}


def _validate(schema: Schema) -> None:
  """Raises SchemaError for anything that would silently corrupt labels."""
  if not schema.questions:
    raise SchemaError(f'schema {schema.name!r} has no questions')
  names = [q.name for q in schema.questions]
  dup_q = sorted({n for n in names if names.count(n) > 1})
  if dup_q:
    raise SchemaError(f'duplicate question(s): {", ".join(dup_q)}')
  columns: list[str] = []
  for q in schema.questions:
    dup_a = sorted({a for a in q.answers if q.answers.count(a) > 1})
    if dup_a:
      raise SchemaError(f'question {q.name!r} repeats answer(s) {dup_a}')
    columns.extend(q.columns)
  seen: set[str] = set()
  for c in columns:
    if c in seen:
      raise SchemaError(
          f'duplicate label column {c!r}: two questions/answers combine to '
          'the same `{question}_{answer}` name')
    seen.add(c)
  for q in schema.questions:
    if q.asked_if is None:
      continue
    if q.asked_if not in seen:
      raise SchemaError(f'question {q.name!r} is asked_if {q.asked_if!r}, '
                        'which is not an answer column of this schema')
    if q.asked_if in q.columns:
      raise SchemaError(f'question {q.name!r} depends on its own answer')
  _check_acyclic(schema)


def _check_acyclic(schema: Schema) -> None:
  parent_question = {}
  for q in schema.questions:
    for c in q.columns:
      parent_question[c] = q.name
  depends_on = {q.name: (parent_question[q.asked_if] if q.asked_if else None)
                for q in schema.questions}
  for start in depends_on:
    seen, node = {start}, depends_on[start]
    while node is not None:
      if node in seen:
        raise SchemaError(f'the asked_if dependencies of {start!r} form a '
                          'cycle')
      seen.add(node)
      node = depends_on[node]


def load_builtin(name: str) -> Schema:
  """Loads a schema shipped as package data (`gzevo_jax/schemas/NAME.json`)."""
  path = os.path.join(_PACKAGE_SCHEMA_DIR, f'{name}.json')
  if not os.path.exists(path):
    raise KeyError(f'no built-in schema {name!r}; available: '
                   f'{", ".join(builtin_schema_names())} (or a path to a '
                   '.json file)')
  return Schema.from_json(path)


GZ_EVO_V0_1: Schema = load_builtin('gz_evo_v0_1')


def get_schema(name_or_path: str) -> Schema:
  """A built-in schema by name, or a user's schema from a `.json` path."""
  if name_or_path.endswith('.json'):
    return Schema.from_json(name_or_path)
  return load_builtin(name_or_path)


def builtin_schema_names() -> Sequence[str]:
  """Names of the schemas shipped as package data."""
  return sorted(os.path.splitext(f)[0] for f in os.listdir(_PACKAGE_SCHEMA_DIR)
                if f.endswith('.json'))
