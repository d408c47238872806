-- The sender authentication (SPF, DKIM, DMARC) checked when the message
-- was received: mailauth.Results as JSON, '' for messages received before.
ALTER TABLE spool ADD COLUMN auth TEXT NOT NULL DEFAULT '';
