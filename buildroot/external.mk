include $(sort $(wildcard $(BR2_EXTERNAL_EDGE_PATH)/package/*/*.mk))
