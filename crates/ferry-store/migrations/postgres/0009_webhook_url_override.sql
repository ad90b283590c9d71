-- Nango's per-connection webhook URL: deliveries about a connection that has one go there
-- instead of the environment's URL. A connect session carries the override to the connections
-- created through it.
ALTER TABLE connections ADD COLUMN webhook_url_override TEXT;
ALTER TABLE connect_sessions ADD COLUMN webhook_url_override TEXT;
