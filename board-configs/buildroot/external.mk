include $(sort $(wildcard $(BR2_EXTERNAL_HUSK_PATH)/package/*/*.mk))
