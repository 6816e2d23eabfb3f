"""rosbag2 MCAP bags: the writer (``writer``); ``stf bag record|play|info`` build on it."""
