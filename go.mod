module tinytor

go 1.26.0
