import torch

# one thread: the suite is many small ops, and CI machines have 2 cores shared with other work
torch.set_num_threads(1)
