-- Drops every loadgen object in the current schema. Never mount this file into a server's
-- docker-entrypoint-initdb.d (the original simulator did, and dropped its tables on first boot).
DROP TABLE IF EXISTS internacoes, exames, consultas, pacientes_convenios, convenios, medicos, pacientes CASCADE;
DROP FUNCTION IF EXISTS set_updated_at() CASCADE;
