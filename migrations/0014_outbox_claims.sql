-- The outbox dispatcher claimed a row by holding its row lock while it called Slack, and recorded the outcome in the
-- same transaction. A replica killed after Slack posted the message, or a call whose answer was lost (a timeout, a 5xx),
-- left no trace of the attempt, and the message was posted a second time. A claim is now a lease written before the
-- call: claimed_until (another replica may take the row once it has passed), and in_doubt_since, the first attempt
-- whose outcome is not known. It is cleared once the outcome is known: delivered, or refused by Slack. A row that is
-- claimed while in doubt is looked for in the channel (by its message metadata) before it is posted again.
ALTER TABLE outbox ADD COLUMN claimed_until timestamptz;
ALTER TABLE outbox ADD COLUMN in_doubt_since timestamptz;
