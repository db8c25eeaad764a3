"""AtomDB: measured atom operators per board, in SQLite, with provenance."""

from atomsim.db.schema import SCHEMA_VERSION, SOURCES
from atomsim.db.store import AtomDB, Measurement, MissingAtoms, Totals
from atomsim.db.tables import EXPORT_COLUMNS, export_table, import_table

__all__ = [
    "EXPORT_COLUMNS", "SCHEMA_VERSION", "SOURCES", "AtomDB", "Measurement", "MissingAtoms",
    "Totals", "export_table", "import_table",
]
