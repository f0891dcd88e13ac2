-- loadgen: tables of the CDC edge-case scenarios (`loadgen scenario`), all prefixed cdc_.
-- Idempotent: every statement may run again and changes nothing. Never touches the 7 hospital
-- tables. Unqualified names: objects land in the first schema of search_path.
-- Every table has a bigint `id` that is unique on its own (the ledger's key).

-- toast-unchanged: a large laudo stored out of line (EXTERNAL: no compression), and a large
-- jsonb and text[] left EXTENDED (compressed, still over the 2 KB TOAST threshold).
CREATE TABLE IF NOT EXISTS cdc_laudos (
  id            BIGSERIAL PRIMARY KEY,
  exame         VARCHAR(80) NOT NULL,
  status        VARCHAR(20) NOT NULL,
  revisao       INTEGER NOT NULL DEFAULT 0,
  laudo         TEXT,
  anexos        JSONB,
  marcadores    TEXT[],
  atualizado_em TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE cdc_laudos ALTER COLUMN laudo SET STORAGE EXTERNAL;

-- replica-identity: three tables of one shape under DEFAULT, FULL and USING INDEX.
CREATE TABLE IF NOT EXISTS cdc_identidade_default (
  id     BIGSERIAL PRIMARY KEY,
  codigo VARCHAR(40) NOT NULL UNIQUE,
  nome   TEXT NOT NULL,
  valor  INTEGER
);
CREATE TABLE IF NOT EXISTS cdc_identidade_full (LIKE cdc_identidade_default INCLUDING ALL);
CREATE TABLE IF NOT EXISTS cdc_identidade_index (
  id     BIGSERIAL PRIMARY KEY,
  codigo VARCHAR(40) NOT NULL,
  nome   TEXT NOT NULL,
  valor  INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS cdc_identidade_index_codigo ON cdc_identidade_index (codigo);
ALTER TABLE cdc_identidade_default REPLICA IDENTITY DEFAULT;
ALTER TABLE cdc_identidade_full REPLICA IDENTITY FULL;
ALTER TABLE cdc_identidade_index REPLICA IDENTITY USING INDEX cdc_identidade_index_codigo;

-- pk-update, delete-tombstone, big-transaction: a parent and a child whose FK cascades updates.
CREATE TABLE IF NOT EXISTS cdc_pacientes (
  id   BIGSERIAL PRIMARY KEY,
  nome TEXT NOT NULL,
  cpf  VARCHAR(20) NOT NULL
);
CREATE TABLE IF NOT EXISTS cdc_exames (
  id          BIGSERIAL PRIMARY KEY,
  paciente_id BIGINT NOT NULL REFERENCES cdc_pacientes (id) ON UPDATE CASCADE ON DELETE RESTRICT,
  tipo_exame  VARCHAR(80) NOT NULL,
  resultado   TEXT
);
CREATE INDEX IF NOT EXISTS cdc_exames_paciente ON cdc_exames (paciente_id);

-- truncate: a table truncated alone, and a parent truncated with CASCADE (takes its child).
CREATE TABLE IF NOT EXISTS cdc_fila (
  id        BIGSERIAL PRIMARY KEY,
  descricao TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cdc_lotes (
  id        BIGSERIAL PRIMARY KEY,
  descricao TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cdc_lote_itens (
  id      BIGSERIAL PRIMARY KEY,
  lote_id BIGINT NOT NULL REFERENCES cdc_lotes (id),
  item    TEXT NOT NULL
);

-- big-transaction: a wide event table; rollback: drafts that mostly never commit.
CREATE TABLE IF NOT EXISTS cdc_eventos (
  id        BIGSERIAL PRIMARY KEY,
  lote      INTEGER NOT NULL,
  sequencia INTEGER NOT NULL,
  payload   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cdc_rascunhos (
  id    BIGSERIAL PRIMARY KEY,
  texto TEXT NOT NULL,
  etapa VARCHAR(20) NOT NULL
);

-- numeric-extremes
CREATE TABLE IF NOT EXISTS cdc_numericos (
  id         BIGSERIAL PRIMARY KEY,
  rotulo     TEXT NOT NULL,
  livre      NUMERIC,
  preciso    NUMERIC(38, 18),
  duplo      DOUBLE PRECISION,
  simples    REAL,
  inteiro    BIGINT,
  pequeno    SMALLINT,
  dinheiro   MONEY
);

-- time-extremes
CREATE TABLE IF NOT EXISTS cdc_tempos (
  id       BIGSERIAL PRIMARY KEY,
  rotulo   TEXT NOT NULL,
  instante TIMESTAMPTZ,
  local_ts TIMESTAMP,
  dia      DATE,
  hora     TIME,
  hora_tz  TIMETZ,
  duracao  INTERVAL
);

-- types
CREATE TABLE IF NOT EXISTS cdc_tipos (
  id       BIGSERIAL PRIMARY KEY,
  rotulo   TEXT NOT NULL,
  uid      UUID,
  doc      JSONB,
  doc_json JSON,
  textos   TEXT[],
  inteiros INTEGER[],
  uids     UUID[],
  dados    BYTEA,
  ip       INET,
  ativo    BOOLEAN
);

-- schema-change: columns come and go while the scenario runs (it resets them first).
CREATE TABLE IF NOT EXISTS cdc_evolucao (
  id   BIGSERIAL PRIMARY KEY,
  nome TEXT NOT NULL
);

-- partitioned: by date range, a default partition, rows that move between partitions.
CREATE SEQUENCE IF NOT EXISTS cdc_agenda_id_seq;
CREATE TABLE IF NOT EXISTS cdc_agenda (
  id        BIGINT NOT NULL DEFAULT nextval('cdc_agenda_id_seq'),
  dia       DATE NOT NULL,
  descricao TEXT NOT NULL,
  PRIMARY KEY (id, dia)
) PARTITION BY RANGE (dia);
CREATE TABLE IF NOT EXISTS cdc_agenda_2024 PARTITION OF cdc_agenda
  FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE IF NOT EXISTS cdc_agenda_2025 PARTITION OF cdc_agenda
  FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE IF NOT EXISTS cdc_agenda_outros PARTITION OF cdc_agenda DEFAULT;

-- unicode
CREATE TABLE IF NOT EXISTS cdc_textos (
  id       BIGSERIAL PRIMARY KEY,
  nome     VARCHAR(150) NOT NULL,
  endereco VARCHAR(200),
  obs      TEXT
);
