"""Campaigns: many targets, versions, suites and seeds, expanded to shards and run locally or
on Ray, resumable shard by shard, with a manifest naming every shard's run log."""
