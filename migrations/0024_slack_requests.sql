-- Slack signs each request it sends anew (X-Slack-Signature over its timestamp and body); the signature of each Slack
-- request that decides something is kept here, so the same signed request sent again while its timestamp is still
-- accepted (a capture replayed within the five minutes) decides nothing a second time, on any instance and after a
-- restart. A row is needed only while its request's timestamp can be accepted: older ones are deleted as new ones come.
CREATE TABLE slack_requests (
    signature       text        PRIMARY KEY,
    received_at     timestamptz NOT NULL
);

CREATE INDEX slack_requests_received_at ON slack_requests (received_at);
