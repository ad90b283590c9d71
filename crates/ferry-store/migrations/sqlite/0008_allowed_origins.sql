-- The app origins an environment's Connect UI and OAuth pages talk to (postMessage targets,
-- accepted message senders, frame-ancestors): a JSON array of origins; NULL = none (only
-- Ferry's own origin), `["*"]` = any (Nango's behaviour, opted into).
ALTER TABLE environments ADD COLUMN allowed_origins TEXT;
