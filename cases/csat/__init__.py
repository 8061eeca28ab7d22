"""Customer satisfaction: one question after a case is resolved, its answer, and the report.

- :mod:`cases.csat.services`: the writes. ``survey_on_resolve`` (called by
  ``cases.services.case_set_status``) queues ``survey_send`` after commit; ``survey_send``
  asks the customer once, on the channel they last wrote on; ``survey_answer`` records the
  rating on the case timeline; ``survey_opt_out`` honours a customer's wish not to be asked.
- :mod:`cases.csat.links`: the short signed link of a survey (``/s/<token>/``).
- :mod:`cases.csat.report`: CSAT per channel, department and agent.
"""
