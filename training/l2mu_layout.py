"""Facts about the model's input layout shared by the torch model and its TensorFlow twin (no torch import)."""

# Loader order is acc_x, acc_y, acc_z, gyro_x, gyro_y, gyro_z; the encoder takes acc_x, gyro_x, acc_y, gyro_y, acc_z, gyro_z.
MODEL_CHANNEL_ORDER = (0, 3, 1, 4, 2, 5)
