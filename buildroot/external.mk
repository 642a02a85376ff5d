include $(sort $(wildcard $(BR2_EXTERNAL_TINYTOR_PATH)/package/*/*.mk))
