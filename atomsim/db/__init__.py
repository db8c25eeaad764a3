"""AtomDB: measured atom operators per board, in SQLite, with provenance."""

from atomsim.db.errors import (
    AtomDBError,
    BadTableValue,
    DatabaseBusy,
    DatabaseFull,
    DatabaseReadOnly,
    NoAtomDB,
    NotAnAtomDB,
    OutputError,
    SchemaVersionError,
    SourceConflict,
    TableError,
    TableFormatError,
    UnknownBoard,
    UnknownColumn,
)
from atomsim.db.records import Measurement, MissingAtoms, Totals
from atomsim.db.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, SOURCES
from atomsim.db.store import AtomDB
from atomsim.db.tables import EXPORT_COLUMNS, export_table, import_table

__all__ = [
    "APPLICATION_ID", "EXPORT_COLUMNS", "MIGRATIONS", "SCHEMA_VERSION", "SOURCES", "AtomDB",
    "AtomDBError", "BadTableValue", "DatabaseBusy", "DatabaseFull", "DatabaseReadOnly",
    "Measurement", "MissingAtoms", "NoAtomDB", "NotAnAtomDB", "OutputError",
    "SchemaVersionError", "SourceConflict", "TableError", "TableFormatError", "Totals",
    "UnknownBoard", "UnknownColumn", "export_table", "import_table",
]
