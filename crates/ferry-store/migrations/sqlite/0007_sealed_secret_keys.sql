-- Environment secret keys are no longer stored in the clear: `secret_key` holds the key's lookup
-- hash (`sha256:…`), `secret_key_sealed` the key sealed by the vault for `ferry keys show`. Ferry
-- converts rows written by earlier versions when it starts.
ALTER TABLE environments ADD COLUMN secret_key_sealed BLOB;
