"""Contact user: who is behind an identity (`people`), the "was this you?" question and its answer
(`questions`), their messages (`blocks`) and the buttons and modal (`listeners`)."""
