"""The mailbox pass: R13 and R14 a shard of users at a time (`passes`, `shard`)."""
