"""Topics: the phrases and themes customers raise, week over week (the topics page).

``phrases`` extracts them from a message, ``services`` is the periodic job that counts them
into ``TopicWeek``, ``selectors`` reads that table for the page, ``views`` is the page, and
``meaning`` the optional sentence-model grouping.
"""
