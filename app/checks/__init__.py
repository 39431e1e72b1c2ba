"""What is refused: one composed config in, ``Problem``s out (``check_config``).

Each field's constraint is a PEP 593 annotation in ``app.configs`` (``Annotated[int, Ge(1)]``),
validated by pydantic's validation core on the value the job will receive (interpolations
resolved); unknown keys are refused with the closest valid names; a ``_target_`` must be one a
registered config uses; cross-field rules cover what one field cannot say alone. Nothing here
imports torch, except the CUDA rule when a config asks for ``cuda``.

Which module to open:

* ``problems``: a ``Problem``, the ``ConfigError`` that carries them, the report (``render``),
  and the wording of an unknown key: to change how a problem reads.
* ``constraints``: an annotation as a validator and in words (``validator``, ``describe``), and
  the rules table of ``--help`` and the README (``rules_table``, ``rules_help``).
* ``walk``: ``check_config``: the walk over a config's nodes, the ``_target_`` allow-list
  (``Targets``, ``allow_target``), logging's imports, and how the cross-field rules are run
  (a rule that raises is an internal problem; under ``APP_CHECKS_STRICT`` it is re-raised).
* ``outputs``: where Hydra writes or connects from its node: logging's handlers (the console,
  or a file inside the run dir) and ``hydra.output_subdir``.
* ``rules`` (and ``hydra_rules``, for Hydra's node): the cross-field rules: to add a rule.
  ``facts``: what the rules read besides the config (a node's kind by type, memory, folders).
"""

from app.checks.constraints import (
    describe,
    example,
    field_hints,
    group_options,
    is_path,
    rules_help,
    rules_table,
    schema_rules,
    type_name,
    unresolved,
    unwrap,
    validator,
)
from app.checks.facts import processes, torchrun_processes
from app.checks.problems import Absent, ConfigError, Problem, render, suggest, unknown_key
from app.checks.rules import CROSS_RULES, cross_rule
from app.checks.walk import STRICT, Targets, allow_target, check_config, checked, internal_problem, resolved_leaves

__all__ = [
    "Absent",
    "checked",
    "CROSS_RULES",
    "torchrun_processes",
    "STRICT",
    "ConfigError",
    "Problem",
    "Targets",
    "allow_target",
    "check_config",
    "cross_rule",
    "describe",
    "example",
    "field_hints",
    "group_options",
    "internal_problem",
    "is_path",
    "processes",
    "render",
    "resolved_leaves",
    "rules_help",
    "rules_table",
    "schema_rules",
    "suggest",
    "type_name",
    "unknown_key",
    "unresolved",
    "unwrap",
    "validator",
]
