"""Repair jobs (抢修工单): dispatch from the office, events from the crews' handhelds, response
figures against the targets, and the outage board the call-centre reads."""
