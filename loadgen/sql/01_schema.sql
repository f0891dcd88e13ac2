-- loadgen: the hospital schema (the original simulator's tables and names).
-- Idempotent: every statement may run again on an existing schema and changes nothing.
-- Unqualified names: objects land in the first schema of search_path.
-- Columns, NOT NULL, CHECK and defaults only: primary keys, UNIQUE constraints and foreign keys
-- live in 02_keys.sql, so a seed into empty tables can load without them and add them after.

CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END; $$ LANGUAGE plpgsql;

CREATE TABLE IF NOT EXISTS pacientes (
  id            BIGSERIAL,
  nome          VARCHAR(150) NOT NULL,
  nascimento    DATE NOT NULL,
  cpf           VARCHAR(20) NOT NULL,
  telefone      VARCHAR(20),
  endereco      VARCHAR(200),
  data_cadastro TIMESTAMP NOT NULL DEFAULT now(),
  created_at    TIMESTAMP NOT NULL DEFAULT now(),
  updated_at    TIMESTAMP NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS medicos (
  id            BIGSERIAL,
  nome          VARCHAR(150) NOT NULL,
  crm           VARCHAR(20) NOT NULL,
  especialidade VARCHAR(80) NOT NULL,
  telefone      VARCHAR(20),
  created_at    TIMESTAMP NOT NULL DEFAULT now(),
  updated_at    TIMESTAMP NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS convenios (
  id         BIGSERIAL,
  nome       VARCHAR(120) NOT NULL,
  cnpj       VARCHAR(25) NOT NULL,
  tipo       VARCHAR(40) NOT NULL,
  cobertura  VARCHAR(120),
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS pacientes_convenios (
  id              BIGSERIAL,
  paciente_id     BIGINT NOT NULL,
  convenio_id     BIGINT NOT NULL,
  numero_carteira VARCHAR(40),
  validade        DATE,
  created_at      TIMESTAMP NOT NULL DEFAULT now(),
  updated_at      TIMESTAMP NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS consultas (
  id          BIGSERIAL,
  paciente_id BIGINT NOT NULL,
  medico_id   BIGINT NOT NULL,
  data        TIMESTAMP NOT NULL,
  motivo      VARCHAR(200) NOT NULL,
  status      VARCHAR(20) NOT NULL
              CHECK (status IN ('agendada', 'realizada', 'cancelada', 'faltou')),
  created_at  TIMESTAMP NOT NULL DEFAULT now(),
  updated_at  TIMESTAMP NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS exames (
  id          BIGSERIAL,
  paciente_id BIGINT NOT NULL,
  tipo_exame  VARCHAR(100) NOT NULL,
  data        TIMESTAMP NOT NULL,
  resultado   VARCHAR(200),
  created_at  TIMESTAMP NOT NULL DEFAULT now(),
  updated_at  TIMESTAMP NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS internacoes (
  id           BIGSERIAL,
  paciente_id  BIGINT NOT NULL,
  data_entrada TIMESTAMP NOT NULL,
  data_saida   TIMESTAMP,
  motivo       VARCHAR(200) NOT NULL,
  quarto       VARCHAR(20),
  created_at   TIMESTAMP NOT NULL DEFAULT now(),
  updated_at   TIMESTAMP NOT NULL DEFAULT now(),
  CHECK (data_saida IS NULL OR data_saida >= data_entrada)
);

-- updated_at is kept by a BEFORE UPDATE trigger on every table.
-- CREATE OR REPLACE TRIGGER (PostgreSQL 14+) keeps a second run harmless.
CREATE OR REPLACE TRIGGER pacientes_updated_at BEFORE UPDATE ON pacientes
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE OR REPLACE TRIGGER medicos_updated_at BEFORE UPDATE ON medicos
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE OR REPLACE TRIGGER convenios_updated_at BEFORE UPDATE ON convenios
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE OR REPLACE TRIGGER pacientes_convenios_updated_at BEFORE UPDATE ON pacientes_convenios
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE OR REPLACE TRIGGER consultas_updated_at BEFORE UPDATE ON consultas
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE OR REPLACE TRIGGER exames_updated_at BEFORE UPDATE ON exames
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE OR REPLACE TRIGGER internacoes_updated_at BEFORE UPDATE ON internacoes
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
