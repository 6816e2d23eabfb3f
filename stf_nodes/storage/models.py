"""Declarative schema shared by everything the twin stores (one ``Base.metadata``).

Tables of the command scheduler:

- ``commands``: one row per accepted command, updated in place through its life cycle.
- ``command_events``: the audit trail, one row per status transition and per step change.
- ``inventory``: one row per rack slot (A1..C3) with what it holds and which unfinished command
  has reserved it.
- ``inventory_events``: one row per change of a slot's contents, with the new contents and why.
- ``command_steps``: the step journal; one row per attempt of a station task, written STARTED
  before the task is sent and finished with its outcome, so a restarted scheduler resumes a
  command where it stood (``stf_nodes.scheduler``).
- ``scheduler_leases``: the lease a scheduler holds while it executes (hot standby): holder,
  fencing token and expiry on the node clock.

Enumerations (command kind and status, workpiece status) are stored as small integers with the
values of the ``stf_msgs`` constants; text columns are bounded (the ``*_LEN`` constants) so
every backend enforces the same limits. Timestamps are UTC with microseconds on every backend.
Table names are plain so other components (the recorder) can add theirs beside them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    TypeDecorator,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

SLOT_LEN = 2
PLACE_LEN = 32
KEY_LEN = 64
ID_LEN = 32
FLAVOR_LEN = 16
STEP_LEN = 128
TEXT_LEN = 500

# SQLite only auto-increments an INTEGER PRIMARY KEY; elsewhere ids are 64-bit like int64 in msgs.
BigIntId = BigInteger().with_variant(Integer(), 'sqlite')

# MySQL/MariaDB: transactional engine and 4-byte UTF-8, whatever the server defaults are.
_MYSQL_OPTIONS = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8mb4'}
REQUEST_KEY_TYPE = String(KEY_LEN).with_variant(
    mysql.VARCHAR(KEY_LEN, charset='ascii', collation='ascii_bin'), 'mysql', 'mariadb'
)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetime stored as naive UTC with microsecond precision.

    MySQL/MariaDB ``DATETIME`` drops fractions unless declared ``DATETIME(6)``. Naive datetimes
    are refused on the way in: a local time silently stored as UTC is a bug that shows up hours
    later.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ('mysql', 'mariadb'):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f'naive datetime {value!r}: pass an aware (UTC) datetime')
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every table of the twin."""


class CommandRow(Base):
    """A scheduler command (kind/status values as in ``stf_msgs/msg/CommandStatus.msg``)."""

    __tablename__ = 'commands'
    __table_args__ = (
        # next_command(): the highest priority pending command, oldest first.
        Index('ix_commands_status_priority_id', 'status', 'priority', 'id'),
        # Never reuse the id of a deleted row: ids are handed to clients.
        {'sqlite_autoincrement': True, **_MYSQL_OPTIONS},
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    kind: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[int] = mapped_column(SmallInteger)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    source_slot: Mapped[str] = mapped_column(String(SLOT_LEN), default='')
    target_slot: Mapped[str] = mapped_column(String(SLOT_LEN), default='')
    flavor: Mapped[str] = mapped_column(String(FLAVOR_LEN), default='')
    workpiece_id: Mapped[str] = mapped_column(String(ID_LEN), default='')
    step: Mapped[str] = mapped_column(String(STEP_LEN), default='')
    message: Mapped[str] = mapped_column(String(TEXT_LEN), default='')
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Random, unique beyond this database: station task keys are built from it, and stations
    # outlive databases (a new database numbers its commands from 1 again).
    uid: Mapped[str] = mapped_column(String(ID_LEN), default='')
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Where the workpiece is (a place of stf_nodes.scheduler.routes) and its status now.
    location: Mapped[str] = mapped_column(String(PLACE_LEN), default='')
    workpiece_status: Mapped[int] = mapped_column(SmallInteger, default=0)
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    step_count: Mapped[int] = mapped_column(Integer, default=0)
    # Finished away from the rack; its workpiece is still to be brought back.
    stranded: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # The client's key of the request that made it (NULL: none): the same key again returns
    # this command instead of making another (a retry after a lost reply). Unique: two
    # schedulers (a deposed leader still committing) cannot both make a command for one key.
    # Compared byte for byte (MySQL's default collation takes 'A' for 'a').
    request_key: Mapped[str | None] = mapped_column(REQUEST_KEY_TYPE, index=True, unique=True)


class CommandEventRow(Base):
    """One transition of a command: ``from_status`` is NULL for the submission itself."""

    __tablename__ = 'command_events'
    __table_args__ = (_MYSQL_OPTIONS,)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    command_id: Mapped[int] = mapped_column(BigInteger, ForeignKey('commands.id'), index=True)
    from_status: Mapped[int | None] = mapped_column(SmallInteger)
    to_status: Mapped[int] = mapped_column(SmallInteger)
    step: Mapped[str] = mapped_column(String(STEP_LEN), default='')
    reason: Mapped[str] = mapped_column(String(TEXT_LEN), default='')
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class InventoryRow(Base):
    """One rack slot; an empty ``workpiece_id`` means the slot holds no workpiece."""

    __tablename__ = 'inventory'
    __table_args__ = (_MYSQL_OPTIONS,)

    slot: Mapped[str] = mapped_column(String(SLOT_LEN), primary_key=True)
    carrier_id: Mapped[str] = mapped_column(String(ID_LEN), default='')
    workpiece_id: Mapped[str] = mapped_column(String(ID_LEN), default='')
    flavor: Mapped[str] = mapped_column(String(FLAVOR_LEN), default='')
    status: Mapped[int] = mapped_column(SmallInteger, default=0)
    reserved_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey('commands.id'))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class InventoryEventRow(Base):
    """A change of a slot's contents: the contents after the change and the reason."""

    __tablename__ = 'inventory_events'
    __table_args__ = (_MYSQL_OPTIONS,)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    slot: Mapped[str] = mapped_column(String(SLOT_LEN), ForeignKey('inventory.slot'), index=True)
    command_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey('commands.id'))
    carrier_id: Mapped[str] = mapped_column(String(ID_LEN), default='')
    workpiece_id: Mapped[str] = mapped_column(String(ID_LEN), default='')
    flavor: Mapped[str] = mapped_column(String(FLAVOR_LEN), default='')
    status: Mapped[int] = mapped_column(SmallInteger, default=0)
    reason: Mapped[str] = mapped_column(String(TEXT_LEN), default='')
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class CommandStepRow(Base):
    """One attempt of a station task of a command (``Phase``/``StepState`` values of
    ``stf_nodes.scheduler.records``); ``key`` is the station's idempotency key."""

    __tablename__ = 'command_steps'
    __table_args__ = (
        Index('ix_command_steps_command_id_id', 'command_id', 'id'),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    command_id: Mapped[int] = mapped_column(BigInteger, ForeignKey('commands.id'))
    phase: Mapped[int] = mapped_column(SmallInteger)
    step_index: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(KEY_LEN), unique=True)
    station: Mapped[str] = mapped_column(String(ID_LEN))
    verb: Mapped[str] = mapped_column(String(ID_LEN))
    target: Mapped[str] = mapped_column(String(ID_LEN))
    value: Mapped[float] = mapped_column(Float, default=0.0)
    source: Mapped[str] = mapped_column(String(PLACE_LEN))
    destination: Mapped[str] = mapped_column(String(PLACE_LEN))
    state: Mapped[int] = mapped_column(SmallInteger)
    workpiece_id: Mapped[str] = mapped_column(String(ID_LEN), default='')
    flavor: Mapped[str] = mapped_column(String(FLAVOR_LEN), default='')
    workpiece_status: Mapped[int] = mapped_column(SmallInteger, default=0)
    message: Mapped[str] = mapped_column(String(TEXT_LEN), default='')
    fencing_token: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class SchedulerLeaseRow(Base):
    """The lease of the schedulers sharing this database: one row per scheduler group.

    ``token`` grows with every change of holder (the fencing token); the holder counts ``beat``
    up at every renewal, and a contender takes the lease when the beat stood still for
    ``duration_ns`` of its own clock (no clock is ever compared with another host's or with a
    sim clock that restarted). An empty ``holder`` is a lease given up.
    """

    __tablename__ = 'scheduler_leases'
    __table_args__ = (_MYSQL_OPTIONS,)

    name: Mapped[str] = mapped_column(String(TEXT_LEN // 4), primary_key=True)
    holder: Mapped[str] = mapped_column(String(TEXT_LEN // 4), default='')
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    beat: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    renewed_at: Mapped[datetime] = mapped_column(UtcDateTime())
