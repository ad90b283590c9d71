-- Pruned records (Nango's PATCH /records/prune): the payload is emptied, the metadata kept, and
-- the time of pruning recorded; a later change to the record writes a payload again and clears it.
ALTER TABLE records ADD COLUMN pruned_at BIGINT;
