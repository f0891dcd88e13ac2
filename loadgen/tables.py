"""Table specs: the one place that knows the hospital schema's tables as data.

Seed, stream, checks, counts and the CDC verifier all read these specs; the DDL itself
lives in ``sql/01_schema.sql`` (keys in ``sql/02_keys.sql``) and must agree with them (a test
checks that it does).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ForeignKey:
    column: str  # referencing column in this table
    parent: str  # referenced table (always by its ``id``)


@dataclass(frozen=True)
class TableSpec:
    name: str  # table name, unqualified (lives in the first schema of search_path)
    columns: tuple[str, ...]  # columns a loader writes, in COPY order, ``id`` first
    seed_rows: int  # rows at scale 1 (the original simulator's seed counts)
    seed_env: str  # the original's environment variable overriding ``seed_rows``
    natural_keys: tuple[tuple[str, ...], ...] = ()  # UNIQUE column groups besides ``id``
    foreign_keys: tuple[ForeignKey, ...] = ()
    is_lookup: bool = False  # lookup tables are filled by sql/03 and never scaled
    # columns kept by the database (defaults and triggers); loaders leave them out
    server_columns: tuple[str, ...] = field(default=("created_at", "updated_at"))


PACIENTES = TableSpec(
    name="pacientes",
    columns=("id", "nome", "nascimento", "cpf", "telefone", "endereco", "data_cadastro"),
    seed_rows=2_000,
    seed_env="SEED_PACIENTES",
    natural_keys=(("cpf",),),
)
MEDICOS = TableSpec(
    name="medicos",
    columns=("id", "nome", "crm", "especialidade", "telefone"),
    seed_rows=200,
    seed_env="SEED_MEDICOS",
    natural_keys=(("crm",),),
)
CONVENIOS = TableSpec(
    name="convenios",
    columns=("id", "nome", "cnpj", "tipo", "cobertura"),
    seed_rows=12,
    seed_env="SEED_CONVENIOS",
    natural_keys=(("cnpj",),),
    is_lookup=True,
)
PACIENTES_CONVENIOS = TableSpec(
    name="pacientes_convenios",
    columns=("id", "paciente_id", "convenio_id", "numero_carteira", "validade"),
    seed_rows=2_500,
    seed_env="SEED_PACIENTES_CONVENIOS",
    natural_keys=(("paciente_id", "convenio_id"),),
    foreign_keys=(ForeignKey("paciente_id", "pacientes"), ForeignKey("convenio_id", "convenios")),
)
CONSULTAS = TableSpec(
    name="consultas",
    columns=("id", "paciente_id", "medico_id", "data", "motivo", "status"),
    seed_rows=4_000,
    seed_env="SEED_CONSULTAS",
    foreign_keys=(ForeignKey("paciente_id", "pacientes"), ForeignKey("medico_id", "medicos")),
)
EXAMES = TableSpec(
    name="exames",
    columns=("id", "paciente_id", "tipo_exame", "data", "resultado"),
    seed_rows=3_500,
    seed_env="SEED_EXAMES",
    foreign_keys=(ForeignKey("paciente_id", "pacientes"),),
)
INTERNACOES = TableSpec(
    name="internacoes",
    columns=("id", "paciente_id", "data_entrada", "data_saida", "motivo", "quarto"),
    seed_rows=1_200,
    seed_env="SEED_INTERNACOES",
    foreign_keys=(ForeignKey("paciente_id", "pacientes"),),
)

# Foreign-key order: every table comes after the tables it references.
TABLES: tuple[TableSpec, ...] = (
    PACIENTES,
    MEDICOS,
    CONVENIOS,
    PACIENTES_CONVENIOS,
    CONSULTAS,
    EXAMES,
    INTERNACOES,
)
BY_NAME: dict[str, TableSpec] = {t.name: t for t in TABLES}
TABLE_NAMES: tuple[str, ...] = tuple(t.name for t in TABLES)

CONSULTA_STATUSES: tuple[str, ...] = ("agendada", "realizada", "cancelada", "faltou")
DEFAULT_DATABASE = "teste_pacientes"
