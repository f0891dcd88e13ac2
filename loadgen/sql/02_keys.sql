-- loadgen: primary keys, UNIQUE constraints and foreign keys of the hospital tables.
-- One constraint per line, named as PostgreSQL names the inline form (pacientes_pkey,
-- pacientes_cpf_key, consultas_paciente_id_fkey...). loadgen/schema.py applies this file
-- statement by statement, each only when its constraint is missing, so it is idempotent
-- through `loadgen init`; in psql, run it once on tables created by 01_schema.sql.
-- A seed into empty tables drops these, loads, then adds them again (as pg_restore does):
-- keys first, then foreign keys (parents' keys must exist), each validated over all rows.
ALTER TABLE pacientes ADD CONSTRAINT pacientes_pkey PRIMARY KEY (id);
ALTER TABLE pacientes ADD CONSTRAINT pacientes_cpf_key UNIQUE (cpf);
ALTER TABLE medicos ADD CONSTRAINT medicos_pkey PRIMARY KEY (id);
ALTER TABLE medicos ADD CONSTRAINT medicos_crm_key UNIQUE (crm);
ALTER TABLE convenios ADD CONSTRAINT convenios_pkey PRIMARY KEY (id);
ALTER TABLE convenios ADD CONSTRAINT convenios_cnpj_key UNIQUE (cnpj);
ALTER TABLE pacientes_convenios ADD CONSTRAINT pacientes_convenios_pkey PRIMARY KEY (id);
ALTER TABLE pacientes_convenios ADD CONSTRAINT pacientes_convenios_paciente_id_convenio_id_key UNIQUE (paciente_id, convenio_id);
ALTER TABLE consultas ADD CONSTRAINT consultas_pkey PRIMARY KEY (id);
ALTER TABLE exames ADD CONSTRAINT exames_pkey PRIMARY KEY (id);
ALTER TABLE internacoes ADD CONSTRAINT internacoes_pkey PRIMARY KEY (id);
ALTER TABLE pacientes_convenios ADD CONSTRAINT pacientes_convenios_paciente_id_fkey FOREIGN KEY (paciente_id) REFERENCES pacientes(id) ON UPDATE CASCADE ON DELETE RESTRICT;
ALTER TABLE pacientes_convenios ADD CONSTRAINT pacientes_convenios_convenio_id_fkey FOREIGN KEY (convenio_id) REFERENCES convenios(id) ON UPDATE CASCADE ON DELETE RESTRICT;
ALTER TABLE consultas ADD CONSTRAINT consultas_paciente_id_fkey FOREIGN KEY (paciente_id) REFERENCES pacientes(id) ON UPDATE CASCADE ON DELETE RESTRICT;
ALTER TABLE consultas ADD CONSTRAINT consultas_medico_id_fkey FOREIGN KEY (medico_id) REFERENCES medicos(id) ON UPDATE CASCADE ON DELETE RESTRICT;
ALTER TABLE exames ADD CONSTRAINT exames_paciente_id_fkey FOREIGN KEY (paciente_id) REFERENCES pacientes(id) ON UPDATE CASCADE ON DELETE RESTRICT;
ALTER TABLE internacoes ADD CONSTRAINT internacoes_paciente_id_fkey FOREIGN KEY (paciente_id) REFERENCES pacientes(id) ON UPDATE CASCADE ON DELETE RESTRICT;
