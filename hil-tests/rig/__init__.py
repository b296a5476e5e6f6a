"""The qemu HIL rig: network namespaces, accelerator detection and the appliance console."""
