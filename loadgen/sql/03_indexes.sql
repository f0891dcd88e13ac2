-- The 9 secondary indexes. Seeding into empty tables drops them, loads, then builds them again
-- (building an index once is cheaper than maintaining it row by row, as pgbench -i does).
CREATE INDEX IF NOT EXISTS idx_pacientes_nome ON pacientes (nome);
CREATE INDEX IF NOT EXISTS idx_medicos_especialidade ON medicos (especialidade);
CREATE INDEX IF NOT EXISTS idx_pacientes_convenios_convenio ON pacientes_convenios (convenio_id);
CREATE INDEX IF NOT EXISTS idx_consultas_paciente ON consultas (paciente_id);
CREATE INDEX IF NOT EXISTS idx_consultas_medico ON consultas (medico_id);
CREATE INDEX IF NOT EXISTS idx_consultas_status_data ON consultas (status, data);
CREATE INDEX IF NOT EXISTS idx_exames_paciente ON exames (paciente_id);
CREATE INDEX IF NOT EXISTS idx_exames_data ON exames (data);
CREATE INDEX IF NOT EXISTS idx_internacoes_paciente ON internacoes (paciente_id);
