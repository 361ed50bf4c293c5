"""Training in the MuJoCo cell: the make train driver, the soak run, weight shipping."""
