"""What /api/v1/backup-policies reads and writes."""

from __future__ import annotations

import marshmallow as ma

from ...domain.backups.policies import DEFAULT_DEADLINE, LastRun, Policy
from ...json_types import JSON
from ..fields import CreatedAt, LabelFilters, ProjectName, StrictBool, StrictInt, VolumeName
from ..repositories.schemas import REPOSITORY_NAME
from ..smorest import Schema

POLICY_NAME = REPOSITORY_NAME
COUNT = {"validate": ma.validate.Range(min=0, max=100_000), "load_default": 0}
EXAMPLE = {
    "name": "nightly",
    "repository": "offsite",
    "volumes": ["site-data"],
    "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "jitter_seconds": 300},
    "retention": {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6},
}


class PolicySelectorSchema(Schema):
    labels = LabelFilters(
        required=True,
        metadata={"description": "Volumes of the policy's project carrying every one (`key` or `key=value`)"},
    )


class PolicyScheduleSchema(Schema):
    cron = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=9, max=200),
        metadata={"description": "5 fields as cron reads them, or 6 (seconds last)", "example": "30 2 * * *"},
    )
    timezone = ma.fields.String(
        load_default="UTC",
        validate=ma.validate.Length(min=1, max=64),
        metadata={"description": "An IANA time zone: the cron is read on its clock, DST included"},
    )
    jitter_seconds = StrictInt(
        load_default=0,
        validate=ma.validate.Range(min=0, max=3600),
        metadata={"description": "Each run starts up to this many seconds after its time"},
    )


class PolicyRetentionSchema(Schema):
    keep_last = StrictInt(**COUNT)
    keep_hourly = StrictInt(**COUNT)
    keep_daily = StrictInt(**COUNT)
    keep_weekly = StrictInt(**COUNT)
    keep_monthly = StrictInt(**COUNT)
    keep_yearly = StrictInt(**COUNT)
    keep_within = ma.fields.String(
        allow_none=True,
        load_default=None,
        validate=ma.validate.Regexp(r"^(\d+y)?(\d+m)?(\d+d)?(\d+h)?$"),
        metadata={"description": "Every backup newer than this before the newest one (`1y2m3d4h`)"},
    )


class PolicyLastRunSchema(Schema):
    at = ma.fields.String(required=True, metadata={"format": "date-time", "description": "The scheduled time"})
    status = ma.fields.String(required=True, metadata={"enum": ["running", "completed", "failed", "missed"]})


class PolicySpecSchema(Schema):
    """What a caller writes (a create or a replace)."""

    repository = ma.fields.String(required=True, validate=REPOSITORY_NAME, metadata={"example": "offsite"})
    volumes = ma.fields.List(
        VolumeName(),
        allow_none=True,
        validate=ma.validate.Length(min=1, max=256),
        metadata={"description": "The volumes it backs up (or `selector`)"},
    )
    selector = ma.fields.Nested(PolicySelectorSchema, allow_none=True, metadata={"description": "Or: volumes by label"})
    schedule = ma.fields.Nested(PolicyScheduleSchema, required=True)
    paused = StrictBool(load_default=False)
    starting_deadline_seconds = StrictInt(
        load_default=DEFAULT_DEADLINE,
        validate=ma.validate.Range(min=1, max=7 * 86400),
        metadata={"description": "A time missed while dockvol was down runs on start if at most this old"},
    )
    retention = ma.fields.Nested(PolicyRetentionSchema, load_default=dict)
    quiesce = ma.fields.String(
        load_default="none",
        validate=ma.validate.OneOf(["none"]),
        metadata={"description": "`none` (pause and stop come later)"},
    )
    hooks = ma.fields.List(
        ma.fields.Dict(),
        load_default=list,
        validate=ma.validate.Length(max=0, error="hooks are not offered yet"),
        metadata={"description": "Empty (hooks come later)"},
    )


class PolicyCreateSchema(PolicySpecSchema):
    name = ma.fields.String(required=True, validate=POLICY_NAME, metadata={"example": "nightly"})
    project = ProjectName(metadata={"description": "The project it is made in: the token's own, or any for `*`"})


class PolicyReplaceSchema(PolicySpecSchema):
    name = ma.fields.String(validate=POLICY_NAME, metadata={"description": "Read-only: the path's, if sent"})


class PolicySchema(Schema):
    name = ma.fields.String(required=True)
    node = ma.fields.String(required=True)
    project = ma.fields.String(required=True)
    repository = ma.fields.String(required=True)
    volumes = ma.fields.List(ma.fields.String(), allow_none=True)
    selector = ma.fields.Nested(PolicySelectorSchema, allow_none=True)
    schedule = ma.fields.Nested(PolicyScheduleSchema, required=True)
    paused = ma.fields.Boolean(required=True)
    starting_deadline_seconds = ma.fields.Integer(required=True)
    retention = ma.fields.Nested(PolicyRetentionSchema, required=True)
    quiesce = ma.fields.String(required=True)
    hooks = ma.fields.List(ma.fields.Dict(), required=True)
    next_runs = ma.fields.List(
        ma.fields.String(metadata={"format": "date-time"}),
        required=True,
        metadata={"description": "The next 3 times, in the schedule's time zone with its offset (empty: paused)"},
    )
    last_run = ma.fields.Nested(PolicyLastRunSchema, allow_none=True)
    created_at = CreatedAt()


class PolicyPruneSchema(Schema):
    dry_run = StrictBool(load_default=False, metadata={"description": "Say what would go, forget nothing"})


class PolicyKeptSchema(Schema):
    backup = ma.fields.String(required=True)
    reasons = ma.fields.List(
        ma.fields.String(),
        required=True,
        metadata={"description": "The rules that keep it (`keep_daily`, `oldest_daily`, `keep_within`, ...)"},
    )


class PolicyPruneResultSchema(Schema):
    keep = ma.fields.List(ma.fields.Nested(PolicyKeptSchema), required=True)
    remove = ma.fields.List(ma.fields.String(), required=True, metadata={"description": "Backups it forgets"})
    dry_run = ma.fields.Boolean(required=True)


def policy_document(p: Policy, node: str, next_runs: list[str], last: LastRun | None) -> JSON:
    return {
        "name": p.name,
        "node": node,
        "project": p.project,
        "repository": p.repository,
        "volumes": list(p.volumes) if p.volumes is not None else None,
        "selector": {"labels": list(p.labels)} if p.labels is not None else None,
        "schedule": {"cron": p.schedule.cron, "timezone": p.schedule.timezone, "jitter_seconds": p.jitter_seconds},
        "paused": p.paused,
        "starting_deadline_seconds": p.starting_deadline_seconds,
        "retention": dict(p.retention.__dict__),
        "quiesce": "none",
        "hooks": [],
        "next_runs": next_runs,
        "last_run": last.__dict__ if last else None,
        "created_at": p.created_at,
    }
