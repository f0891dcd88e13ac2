-- Lookup data: the 12 convenios (insurers). CNPJs carry valid check digits.
-- ON CONFLICT keeps a second run harmless.
INSERT INTO convenios (nome, cnpj, tipo, cobertura) VALUES
  ('SUS - Sistema Único de Saúde', '53.464.097/0001-50', 'publico', 'Nacional - integral'),
  ('Unimed Nacional', '30.246.633/0001-45', 'privado', 'Nacional - ambulatorial e hospitalar'),
  ('Bradesco Saúde', '62.992.312/0001-86', 'privado', 'Nacional - hospitalar com obstetrícia'),
  ('SulAmérica Saúde', '97.366.946/0001-08', 'privado', 'Nacional - ambulatorial e hospitalar'),
  ('Amil Assistência Médica', '16.480.894/0001-02', 'privado', 'Nacional - referência'),
  ('Hapvida', '19.722.233/0001-26', 'privado', 'Regional Norte/Nordeste - ambulatorial'),
  ('NotreDame Intermédica', '81.924.865/0001-46', 'privado', 'Regional Sudeste - hospitalar'),
  ('Porto Seguro Saúde', '22.633.920/0001-80', 'privado', 'Nacional - ambulatorial e hospitalar'),
  ('Cassi', '59.081.935/0001-92', 'empresarial', 'Nacional - autogestão'),
  ('Geap Autogestão em Saúde', '88.220.482/0001-36', 'empresarial', 'Nacional - servidores federais'),
  ('Golden Cross', '17.784.483/0001-65', 'privado', 'Regional Sudeste - ambulatorial'),
  ('Prevent Senior', '78.106.871/0001-81', 'privado', 'Regional São Paulo - hospitalar')
ON CONFLICT (cnpj) DO NOTHING;
