"""What the utility is made of: users, grids and devices; accounts, routes and meters loaded
from the billing system's CSV; cycles and assignments of routes to readers."""
