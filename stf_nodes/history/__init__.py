"""Generated history: scenarios (``scenario``), the station models driven through the
scheduler's plans with reuse of simulated commands (``simulation``), the day-by-day generator of
the recorder's rows and the ground truth (``generator``), and ``stf history generate``
(``run``, ``cli``, ``bag``)."""
