"""History on a SQL engine (SPEC §9): the rule pushed down into Athena's and CloudTrail Lake's SQL.

- `values`: the only way a value reaches a query — checked against a strict shape, then written as a
  literal (Athena: as an execution parameter beside the SQL text; Lake, which has no parameters: in it).
- `query`: the rule of `detection.rule` as SQL over AWS's standard CloudTrail table (Athena) and over an
  event data store (Lake); only the rows that can match come back.
- `rows`: each row rebuilt into the CloudTrail record it came from and passed through the same record
  parsing and rule as files are, so the same `Call`s come out.
- `athena`, `lake`: the engines' protocols (start, poll within a deadline and a bytes-scanned limit,
  pages), each with its figures.
- `engine`: `athena://database.table` and `lake://store` as inputs of `scan` and of the first start's backfill.
"""
