"""The husk device lab: boots Debian kernels in full-system QEMU for each
architecture husk ships on, and runs scenario scripts inside the guests.

Modules:
  debian     fetches kernels and busybox-static with a private apt configuration
  initramfs  writes the guest's initramfs (cpio newc, gzip)
  board      reads the QEMU boards from board-configs/
  session    follows one guest console and decides each scenario's outcome
  runner     boots guests until every scenario has an outcome
  cli        the `qemu-tests/lab` command
"""
