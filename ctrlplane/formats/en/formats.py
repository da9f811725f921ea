"""How the admin writes times: to the second, year first (the locale's default is
"Nov. 24, 2026, 7:28 a.m.", to the minute). All times are UTC (TIME_ZONE)."""

DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
